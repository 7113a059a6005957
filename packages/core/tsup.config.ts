import { packageConfig } from "../../tools/tsup.base";

// Two entries: the main one (browser-safe) and ./node (files, PNG, Node's backend start-up).
export default packageConfig({ nodeEntry: true });
