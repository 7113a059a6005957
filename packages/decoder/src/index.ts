export {
  SitReconstructionHead,
  type SitReconstructionHeadOptions,
} from "./sit-reconstruction-head";
export {
  TransformerDecoder,
  type TransformerDecoderOptions,
  type DecoderForwardOptions,
  type DecoderOutput,
} from "./transformer-decoder";
export { toTokenMask, type TokenMaskInput } from "./token-mask";
export { sincosPosEmbed2d } from "./sincos";
