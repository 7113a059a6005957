import { runExampleCli } from "@sit/example-shared";

// All the work is in @sit/example-shared; this example is its config.json.
await runExampleCli(new URL("../config.json", import.meta.url));
