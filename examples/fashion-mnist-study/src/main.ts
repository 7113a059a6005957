// The study lives in tools/repro/fashion-mnist.ts (so that it can be run from a checkout without
// this package); this entry point forwards the command line to it.
//   npm start -w @sit/example-fashion-mnist-study -- --data DIR [--budget smoke|cpu|gpu] …
import { main } from "../../../tools/repro/fashion-mnist";

main(process.argv.slice(2)).catch((err) => {
  console.error((err as Error).message);
  process.exitCode = 1;
});
