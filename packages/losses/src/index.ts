export {
  maskedReconstructionLoss,
  RECONSTRUCTION_LOSS_DEFAULTS,
  type MaskedReconstructionOptions,
} from "./masked-reconstruction";
export {
  mocoV3Loss,
  sitContrastiveLoss,
  sitContrastiveLossOfViews,
  CONTRASTIVE_LOSS_DEFAULTS,
  type MocoV3Options,
} from "./moco-v3";
export {
  DinoLoss,
  dinoLoss,
  updatedCenter,
  teacherTemperatureAt,
  DINO_LOSS_DEFAULTS,
  type DinoLossOptions,
} from "./dino";
export { ntXentLoss, type NtXentOptions } from "./nt-xent";
export { l2Normalize, stopGradient, softmaxCrossEntropy } from "./ops";
