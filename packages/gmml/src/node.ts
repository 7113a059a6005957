// Public API of @sit/gmml/node: the GMML grid as a PNG file. Everything else is @sit/gmml's,
// which runs in a web page as well as under Node.
export { renderGmmlGrid, writeGmmlGrid } from "./grid-png";
