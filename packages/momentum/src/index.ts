export { EmaTeacher, type TeacherSource } from "./ema-teacher";
export {
  cosineMomentum,
  MOMENTUM_DEFAULTS,
  type CosineMomentumOptions,
  type MomentumSchedule,
} from "./cosine-momentum";
