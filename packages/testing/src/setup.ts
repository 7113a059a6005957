// Every test file starts on the cpu backend (deterministic, no start-up cost) unless
// SIT_TEST_BACKEND says otherwise; specs that exercise other backends switch with `withBackend`.
import type { BackendName } from "@sit/core";
import { initBackend } from "@sit/core/node";

await initBackend((process.env.SIT_TEST_BACKEND as BackendName | undefined) ?? "cpu", {
  log: false,
  allowSoftwareAdapter: true,
});
