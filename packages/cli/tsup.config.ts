import { packageConfig } from "../../tools/tsup.base";

export default packageConfig({ entry: ["src/index.ts", "src/bin.ts"] });
