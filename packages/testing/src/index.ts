export { fixturePath, loadFixture, loadFixtureRaw, loadSchedules, FIXTURES_DIR } from "./fixtures";
export { expectClose, maxRelativeError, maxAbsoluteError } from "./compare";
export { withBackend, useWebgpu, countBufferCopies, TEST_BACKENDS } from "./backends";
export { sharedDataDir, describeWithSharedData } from "./shared-data";
export { loadFromTorch, gradientToTorch } from "./torch";
