// The built-in avatars, drawn by the page as inline SVG: no image files, no network.
// The ids are the server's (pushwire.server.demo.AVATARS); anything else draws "cat".

const SVG = "http://www.w3.org/2000/svg";
const INK = "#2d2a32";

/** @type {Record<string, {label: string, background: string, shapes: Array<[string, Record<string, string | number>]>}>} */
const DRAWINGS = {
  cat: {
    label: "Cat",
    background: "#fde2c4",
    shapes: [
      ["polygon", { points: "13,27 16,8 29,19", fill: "#f0a04b" }],
      ["polygon", { points: "51,27 48,8 35,19", fill: "#f0a04b" }],
      ["polygon", { points: "17,22 18,13 25,19", fill: "#f7c9a0" }],
      ["polygon", { points: "47,22 46,13 39,19", fill: "#f7c9a0" }],
      ["circle", { cx: 32, cy: 36, r: 19, fill: "#f0a04b" }],
      ["ellipse", { cx: 25, cy: 34, rx: 2.6, ry: 3.6, fill: INK }],
      ["ellipse", { cx: 39, cy: 34, rx: 2.6, ry: 3.6, fill: INK }],
      ["polygon", { points: "29.5,40 34.5,40 32,43", fill: "#d9534f" }],
      ["path", { d: "M14 41 L24 42 M14 46 L24 44 M50 41 L40 42 M50 46 L40 44", stroke: INK, "stroke-width": 1.2 }],
    ],
  },
  fox: {
    label: "Fox",
    background: "#ffe3cf",
    shapes: [
      ["polygon", { points: "10,20 14,5 27,15", fill: "#e8702a" }],
      ["polygon", { points: "54,20 50,5 37,15", fill: "#e8702a" }],
      ["polygon", { points: "14,16 16,9 22,14", fill: "#fff3e6" }],
      ["polygon", { points: "50,16 48,9 42,14", fill: "#fff3e6" }],
      ["path", { d: "M9 20 Q32 8 55 20 L32 54 Z", fill: "#e8702a" }],
      ["polygon", { points: "11,23 32,54 24,31", fill: "#fff8f0" }],
      ["polygon", { points: "53,23 32,54 40,31", fill: "#fff8f0" }],
      ["circle", { cx: 24, cy: 28, r: 2.6, fill: INK }],
      ["circle", { cx: 40, cy: 28, r: 2.6, fill: INK }],
      ["circle", { cx: 32, cy: 50, r: 3, fill: INK }],
    ],
  },
  owl: {
    label: "Owl",
    background: "#ece2d0",
    shapes: [
      ["polygon", { points: "13,22 15,6 27,16", fill: "#8b5e3c" }],
      ["polygon", { points: "51,22 49,6 37,16", fill: "#8b5e3c" }],
      ["circle", { cx: 32, cy: 36, r: 22, fill: "#8b5e3c" }],
      ["ellipse", { cx: 32, cy: 46, rx: 12, ry: 10, fill: "#c49a6c" }],
      ["circle", { cx: 23, cy: 31, r: 9, fill: "#ffffff" }],
      ["circle", { cx: 41, cy: 31, r: 9, fill: "#ffffff" }],
      ["circle", { cx: 24, cy: 31, r: 4.2, fill: INK }],
      ["circle", { cx: 40, cy: 31, r: 4.2, fill: INK }],
      ["polygon", { points: "29,39 35,39 32,46", fill: "#f2a93b" }],
    ],
  },
  bear: {
    label: "Bear",
    background: "#f3e3d3",
    shapes: [
      ["circle", { cx: 16, cy: 18, r: 8, fill: "#8d5b3a" }],
      ["circle", { cx: 48, cy: 18, r: 8, fill: "#8d5b3a" }],
      ["circle", { cx: 16, cy: 18, r: 4, fill: "#c79a78" }],
      ["circle", { cx: 48, cy: 18, r: 4, fill: "#c79a78" }],
      ["circle", { cx: 32, cy: 35, r: 21, fill: "#a06a42" }],
      ["ellipse", { cx: 32, cy: 43, rx: 9.5, ry: 7.5, fill: "#e0c09f" }],
      ["ellipse", { cx: 32, cy: 40, rx: 3.6, ry: 2.6, fill: INK }],
      ["circle", { cx: 24, cy: 31, r: 2.6, fill: INK }],
      ["circle", { cx: 40, cy: 31, r: 2.6, fill: INK }],
    ],
  },
  panda: {
    label: "Panda",
    background: "#dff0e6",
    shapes: [
      ["circle", { cx: 16, cy: 18, r: 8, fill: INK }],
      ["circle", { cx: 48, cy: 18, r: 8, fill: INK }],
      ["circle", { cx: 32, cy: 35, r: 21, fill: "#ffffff" }],
      ["ellipse", { cx: 23, cy: 33, rx: 5.5, ry: 7.5, fill: INK, transform: "rotate(-25 23 33)" }],
      ["ellipse", { cx: 41, cy: 33, rx: 5.5, ry: 7.5, fill: INK, transform: "rotate(25 41 33)" }],
      ["circle", { cx: 24, cy: 32, r: 2, fill: "#ffffff" }],
      ["circle", { cx: 40, cy: 32, r: 2, fill: "#ffffff" }],
      ["ellipse", { cx: 32, cy: 43, rx: 3.6, ry: 2.6, fill: INK }],
    ],
  },
  frog: {
    label: "Frog",
    background: "#dcf2d0",
    shapes: [
      ["circle", { cx: 20, cy: 21, r: 9, fill: "#5cb85c" }],
      ["circle", { cx: 44, cy: 21, r: 9, fill: "#5cb85c" }],
      ["ellipse", { cx: 32, cy: 39, rx: 24, ry: 17, fill: "#5cb85c" }],
      ["circle", { cx: 20, cy: 21, r: 6, fill: "#ffffff" }],
      ["circle", { cx: 44, cy: 21, r: 6, fill: "#ffffff" }],
      ["circle", { cx: 20, cy: 22, r: 3, fill: INK }],
      ["circle", { cx: 44, cy: 22, r: 3, fill: INK }],
      ["circle", { cx: 15, cy: 41, r: 3, fill: "#f4a6a6" }],
      ["circle", { cx: 49, cy: 41, r: 3, fill: "#f4a6a6" }],
      ["path", { d: "M19 42 Q32 52 45 42", stroke: "#2d5a2d", "stroke-width": 2.5, fill: "none", "stroke-linecap": "round" }],
    ],
  },
  robot: {
    label: "Robot",
    background: "#dde3ea",
    shapes: [
      ["path", { d: "M32 7 L32 15", stroke: "#6b7785", "stroke-width": 3 }],
      ["circle", { cx: 32, cy: 7, r: 3.5, fill: "#e05d5d" }],
      ["rect", { x: 8, y: 27, width: 5, height: 12, rx: 2, fill: "#6b7785" }],
      ["rect", { x: 51, y: 27, width: 5, height: 12, rx: 2, fill: "#6b7785" }],
      ["rect", { x: 12, y: 15, width: 40, height: 36, rx: 8, fill: "#9aa7b5" }],
      ["rect", { x: 19, y: 24, width: 10, height: 9, rx: 2, fill: INK }],
      ["rect", { x: 35, y: 24, width: 10, height: 9, rx: 2, fill: INK }],
      ["circle", { cx: 24, cy: 28.5, r: 2.5, fill: "#7fd1ff" }],
      ["circle", { cx: 40, cy: 28.5, r: 2.5, fill: "#7fd1ff" }],
      ["rect", { x: 22, y: 39, width: 20, height: 6, rx: 2, fill: INK }],
      ["path", { d: "M27 39 V45 M32 39 V45 M37 39 V45", stroke: "#9aa7b5", "stroke-width": 1.5 }],
    ],
  },
  alien: {
    label: "Alien",
    background: "#e6ddf5",
    shapes: [
      ["path", { d: "M22 14 L17 5 M42 14 L47 5", stroke: "#6fbf6f", "stroke-width": 2.5, "stroke-linecap": "round" }],
      ["circle", { cx: 17, cy: 5, r: 3, fill: "#6fbf6f" }],
      ["circle", { cx: 47, cy: 5, r: 3, fill: "#6fbf6f" }],
      ["path", { d: "M32 11 C50 11 54 26 50 38 C46 50 38 57 32 57 C26 57 18 50 14 38 C10 26 14 11 32 11 Z", fill: "#8fd18f" }],
      ["ellipse", { cx: 23, cy: 33, rx: 5.5, ry: 9, fill: "#1d1b22", transform: "rotate(-30 23 33)" }],
      ["ellipse", { cx: 41, cy: 33, rx: 5.5, ry: 9, fill: "#1d1b22", transform: "rotate(30 41 33)" }],
      ["circle", { cx: 21, cy: 30, r: 1.5, fill: "#ffffff" }],
      ["circle", { cx: 39, cy: 30, r: 1.5, fill: "#ffffff" }],
      ["path", { d: "M28 48 Q32 51 36 48", stroke: "#1d1b22", "stroke-width": 2, fill: "none", "stroke-linecap": "round" }],
    ],
  },
};

/** The avatar ids, in the order the login screen offers them. */
export const AVATARS = Object.freeze(Object.keys(DRAWINGS));

/**
 * @param {unknown} id
 * @returns {string} a known avatar id: `id`, or "cat" for anything else
 */
export function avatarId(id) {
  return typeof id === "string" && Object.hasOwn(DRAWINGS, id) ? id : "cat";
}

/** @param {string} id */
export function avatarLabel(id) {
  return DRAWINGS[avatarId(id)].label;
}

/**
 * A new <svg> element drawing avatar `id` (decorative: the name beside it says who).
 * @param {unknown} id
 * @param {number} size pixels
 * @returns {SVGSVGElement}
 */
export function avatarElement(id, size) {
  const drawing = DRAWINGS[avatarId(id)];
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 64 64");
  svg.setAttribute("width", String(size));
  svg.setAttribute("height", String(size));
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.classList.add("avatar");
  svg.append(shape("circle", { cx: 32, cy: 32, r: 32, fill: drawing.background }));
  for (const [tag, attributes] of drawing.shapes) svg.append(shape(tag, attributes));
  return svg;
}

/**
 * @param {string} tag
 * @param {Record<string, string | number>} attributes
 */
function shape(tag, attributes) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  return element;
}
