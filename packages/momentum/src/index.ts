export { EmaTeacher, type TeacherSource } from "./ema-teacher";
export {
  cosineMomentum,
  type CosineMomentumOptions,
  type MomentumSchedule,
} from "./cosine-momentum";
