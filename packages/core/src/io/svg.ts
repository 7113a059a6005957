// Text for the SVG pictures the packages draw (rasterised by sharp through fontconfig, so the
// text is set in a real system font — DejaVu Sans on Debian).

/** The font stack of every picture's text. */
export const FIGURE_FONT = "DejaVu Sans, Helvetica, Arial, sans-serif";

/** `s` safe inside SVG text and attribute values. */
export function escapeXml(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" })[c] as string,
  );
}

/** Options of {@link svgText}. */
export interface TextOptions {
  /** Font size in pixels (default 14). */
  size?: number;
  /** Horizontal anchor of `x` (default middle). */
  anchor?: "start" | "middle" | "end";
  bold?: boolean;
  /** Colour (default near-black). */
  fill?: string;
  /** Rotation in degrees about (x, y), e.g. −90 for a vertical axis title. */
  rotate?: number;
}

/** A line of text whose baseline is at `y`. */
export function svgText(x: number, y: number, text: string, o: TextOptions = {}): string {
  const rotate = o.rotate ? ` transform="rotate(${o.rotate} ${x} ${y})"` : "";
  return (
    `<text x="${x}" y="${y}" font-family="${FIGURE_FONT}" font-size="${o.size ?? 14}"` +
    ` text-anchor="${o.anchor ?? "middle"}" fill="${o.fill ?? "#1a1a1a"}"` +
    `${o.bold ? ' font-weight="bold"' : ""}${rotate}>${escapeXml(text)}</text>`
  );
}
