import { packageConfig } from "../../tools/tsup.base";

// Two entries: the main one (browser-safe) and ./node (what only Node can do).
export default packageConfig({ nodeEntry: true });
