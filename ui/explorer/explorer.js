// Explorer: one layer's attention matrix and the selected token's bars, drawn on canvases.
//
// The payload (ui/explorer/payload.py, one binary message) holds every head of the layer (and
// the page's mean of heads) as 8-bit codes on a scale per row, and the shown head as float16.
// Head, token, hover, legend, zoom and pan changes repaint here with no server run. The
// matrix is drawn as a view (zoom, pan) with the labels of the rows and columns in view beside
// it and a minimap. The view state reaches Python as the trigger "view" ({head, token}) once
// the keys rest (VIEW_DELAY_MS), in one run; PageUp / PageDown ask Python for the next layer
// at once ({layer}). Python's own changes (its Layer, Head and Selected token controls) come
// back as a new payload and are adopted, unless they only echo what this component sent.
//
// A layer change sends the shown matrix first (its float16, payload.later) and the codes of
// every matrix later in the same run, through a second, hidden element of this component
// (payload.headsOf): until they come, another head waits (never drawn from other data) and,
// if they never come (HEADS_WAIT_MS), the explorer asks for them ({need: true}).
//
// A long input (payload.long) holds one head's pooled overview instead; zoomed in, the
// explorer asks for exact tiles (the trigger "tiles") and draws them over the blocks.

const VIEW_DELAY_MS = 600;
const EXPLORER_EVENT = "atlas-explorer"; // the line view (ui/head_view) listens on window
const HEADS_MESSAGE_EVENT = "atlas-explorer-heads-message"; // the hidden element has them
const HEADS_EVENT = "atlas-explorer-heads"; // the layer's codes reached the shared store
const HEADS_WAIT_MS = 4000; // a head waits this long for the codes before asking again
const MIN_ROW_PX = 11; // every row gets a label: a long input makes the matrix taller
const MAX_ROW_PX = 36; // a short input's cells stop growing in height (they stay wide)
const MIN_LABEL_PX = 7; // rotated column labels need this much width each (a 7 px font);
// thinner columns get every second (third…) label
const MIN_ROW_LABEL_PX = 9; // a row label needs this much height: zoomed out, every k-th row
const MAX_CELL_PX = 48; // the deepest zoom: one cell this wide
const ZOOM_STEP = 1.5; // + and - zoom by this factor
const PAN_FRACTION = 0.25; // Shift + arrow pans by a quarter of the view
const MINIMAP_PX = 120; // the minimap's longer side
const MAX_TILES = 600; // exact tiles a long input keeps (64 × 64: 9.8 MB of float32)
const TILE_MIN_PX = 2; // a long input asks for exact tiles once a token is this wide
const TILE_ASK_MAX = 64; // tiles in one request (ui/explorer/payload.py checked_tiles)
const TILE_DELAY_MS = 120; // the view rests this long before tiles are asked for
const OVERVIEW_PX = 1024; // a long input's overview image: at most this many pixels a side
const LOG_DECADES = 3; // the log scale spans three decades below its top
const BAR_PX = 72; // height of each half of the bars (out above, in below)
const OUT_COLOUR = "#0072B2"; // Okabe-Ito blue and orange: told apart by colour-blind readers
const IN_COLOUR = "#E69F00";
const OUT_COLOUR_DARK = "#56B4E9";
const NEGATIVE_COLOUR = "#D55E00"; // Okabe-Ito vermillion: signed scores below zero

// Perceptually uniform palettes, readable for colour-blind readers: control points of
// matplotlib's viridis and cividis; "ink" runs from the page background to a strong colour.
const PALETTES = {
  viridis: ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58", "#b5de2b", "#fde725"],
  cividis: ["#00224e", "#123570", "#3b496c", "#575d6d", "#707173", "#8a8779", "#a69d75", "#c4b56c", "#e4cf5b", "#fee838"],
  ink: null,
};
const PALETTE_NAMES = { viridis: "viridis", cividis: "cividis", ink: "background to ink" };
const SCALE_NAMES = {
  shared: "shared across the model's heads and layers",
  chart: "this matrix's own maximum",
  fixed: "fixed 0–1",
};

function hexRgb(hex) {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

function parseColour(ctx, colour, fallback) {
  ctx.fillStyle = fallback;
  ctx.fillStyle = colour || fallback;
  const value = ctx.fillStyle;
  if (value.startsWith("#")) return hexRgb(value);
  return (value.match(/[\d.]+/g) || [255, 255, 255]).slice(0, 3).map(Number);
}

function lut(stops) {
  // 256 RGB entries interpolated linearly between the control points.
  const table = new Uint8ClampedArray(256 * 3);
  const rgb = stops.map((s) => (typeof s === "string" ? hexRgb(s) : s));
  for (let i = 0; i < 256; i += 1) {
    const t = (i / 255) * (rgb.length - 1);
    const j = Math.min(rgb.length - 2, Math.floor(t));
    const f = t - j;
    for (let c = 0; c < 3; c += 1) table[3 * i + c] = rgb[j][c] + (rgb[j + 1][c] - rgb[j][c]) * f;
  }
  return table;
}

function decodeFloat16(bytes) {
  // Little-endian float16 bytes to float32; a table of all 65,536 values: one lookup a cell.
  const halves = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >> 1);
  const out = new Float32Array(halves.length);
  const table = decodeFloat16.table || (decodeFloat16.table = float16Table());
  for (let i = 0; i < halves.length; i += 1) out[i] = table[halves[i]];
  return out;
}

const EMPTY_CODE = 255; // ui/explorer/payload.py: a cell never computed
const STEPS = 254;

function decodeCodes(codes, scales, signed) {
  // 8-bit codes on a scale per row (payload.py): code / 254 of the row's largest magnitude
  // (signed: code / 127 - 1). One multiply a cell through a 256-entry table per row.
  const rows = scales.length;
  const cols = codes.length / rows;
  const out = new Float32Array(codes.length);
  const unit = new Float32Array(256);
  for (let q = 0; q < 256; q += 1) {
    unit[q] = q === EMPTY_CODE ? NaN : signed ? q / (STEPS / 2) - 1 : q / STEPS;
  }
  for (let r = 0, p = 0; r < rows; r += 1) {
    const s = scales[r];
    for (let c = 0; c < cols; c += 1, p += 1) out[p] = unit[codes[p]] * s;
  }
  return out;
}

function unpack(message) {
  // ui/explorer/payload.py `pack`: "ATX2", header length, JSON header, 8-byte-aligned arrays.
  const bytes = message instanceof Uint8Array ? message : new Uint8Array(message.buffer || message);
  const copy = bytes.slice(); // its own buffer, offset 0: typed views need aligned offsets
  const view = new DataView(copy.buffer);
  const length = view.getUint32(4, true);
  const payload = JSON.parse(new TextDecoder().decode(copy.subarray(8, 8 + length)));
  const base = 8 + length;
  for (const [name, [offset, size]] of Object.entries(payload.$blobs)) {
    payload[name] = new Uint8Array(copy.buffer, base + offset, size);
  }
  delete payload.$blobs;
  return payload;
}

/** The layer's codes from the hidden element (ui/explorer/component.py HEADS_JS, a message
 * with `headsOf`): into the store when it holds that layer (the explorer adopted its own
 * message), else kept until it does. */
function readHeadsMessage() {
  const data = window.__atlasExplorerHeadsMessage;
  if (!data) return;
  window.__atlasExplorerHeadsMessage = null;
  const payload = unpack(data);
  if (payload.headsOf === null) return;
  window.__atlasExplorerHeads = payload;
  const store = window.__atlasExplorerData;
  if (store && takeHeads(store)) window.dispatchEvent(new CustomEvent(HEADS_EVENT));
}

/** Moves waiting codes of the store's layer into it; whether it did. */
function takeHeads(store) {
  const heads = window.__atlasExplorerHeads;
  if (!heads || heads.headsOf !== store.key) return false;
  window.__atlasExplorerHeads = null;
  if (store.codes) return false;
  setCodes(store, heads.codes, heads.scales);
  return true;
}

function setCodes(store, codes, scales) {
  store.codes = codes;
  store.scales = new Float32Array(scales.buffer, scales.byteOffset, scales.byteLength / 4);
}

function float16Table() {
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h += 1) {
    const sign = h & 0x8000 ? -1 : 1;
    const exponent = (h >> 10) & 0x1f;
    const fraction = h & 0x3ff;
    if (exponent === 0) table[h] = sign * 2 ** -14 * (fraction / 1024);
    else if (exponent === 31) table[h] = fraction ? NaN : sign * Infinity;
    else table[h] = sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
  }
  return table;
}

function formatValue(v) {
  if (!Number.isFinite(v)) return "not computed";
  if (v === 0) return "0";
  const a = Math.abs(v);
  // 4 significant digits: all a float16 holds (its step is 1/1024 of the value's power of 2).
  return a >= 0.001 && a < 1000 ? String(Number(v.toPrecision(4))) : v.toExponential(3);
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** The part of a canvas 2D context the explorer's painters use, writing SVG instead of
 * pixels: rectangles and paths with the current transform applied, text with its transform
 * and font, images as embedded PNG, clip rectangles as clip paths, the hatch as a pattern.
 * Text is measured by a real canvas context (`measure`). */
class SvgContext {
  constructor(width, height, measure, { background, hatch }) {
    this.width = width;
    this.height = height;
    this.measure = measure;
    this.parts = [];
    this.defs = [
      `<pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse">` +
        `<path d="M0 6L6 0" stroke="${hatch}" stroke-width="1"/></pattern>`,
    ];
    this.state = this.fresh();
    this.stack = [];
    this.clips = 0;
    this.path = "";
    this.layer = false;
    this.backgroundColour = background;
    this.fillRect(0, 0, width, height, background);
  }

  fresh() {
    return {
      m: [1, 0, 0, 1, 0, 0],
      fillStyle: "#000",
      strokeStyle: "#000",
      lineWidth: 1,
      font: "10px sans-serif",
      textAlign: "start",
      textBaseline: "alphabetic",
      dash: [],
      clip: null,
      smooth: true,
    };
  }

  // state
  save() {
    this.stack.push({ ...this.state, m: [...this.state.m], dash: [...this.state.dash] });
  }

  restore() {
    if (this.stack.length) this.state = this.stack.pop();
  }

  setLineDash(dash) {
    this.state.dash = [...dash];
  }

  createPattern() {
    return "url(#hatch)";
  }

  measureText(text) {
    this.measure.font = this.state.font;
    return this.measure.measureText(text);
  }

  // transforms
  transform(a, b, c, d, e, f) {
    const [A, B, C, D, E, F] = this.state.m;
    this.state.m = [A * a + C * b, B * a + D * b, A * c + C * d, B * c + D * d, A * e + C * f + E, B * e + D * f + F];
  }

  translate(x, y) {
    this.transform(1, 0, 0, 1, x, y);
  }

  rotate(angle) {
    const c = Math.cos(angle);
    const s = Math.sin(angle);
    this.transform(c, s, -s, c, 0, 0);
  }

  scale(x, y) {
    this.transform(x, 0, 0, y, 0, 0);
  }

  setTransform(a, b, c, d, e, f) {
    this.state.m = [a, b, c, d, e, f];
  }

  point(x, y) {
    const [a, b, c, d, e, f] = this.state.m;
    return [a * x + c * y + e, b * x + d * y + f].map((v) => Number(v.toFixed(2)));
  }

  matrixAttribute() {
    return `matrix(${this.state.m.map((v) => Number(v.toFixed(4))).join(" ")})`;
  }

  // output
  emit(element) {
    const clip = this.state.clip;
    this.parts.push(clip ? `<g clip-path="url(#${clip})">${element}</g>` : element);
  }

  colour(value) {
    return String(value).replace(/"/g, "'");
  }

  rectPath(x, y, w, h) {
    const corners = [this.point(x, y), this.point(x + w, y), this.point(x + w, y + h), this.point(x, y + h)];
    return `M${corners.map((p) => p.join(" ")).join("L")}Z`;
  }

  fillRect(x, y, w, h, fill = this.state.fillStyle) {
    if (!(w > 0 && h > 0)) return;
    this.emit(`<path d="${this.rectPath(x, y, w, h)}" fill="${this.colour(fill)}"/>`);
  }

  clearRect(x, y, w, h) {
    // What a cleared canvas shows is the page behind it: the background (a transparent
    // layer's painter, such as the overlay's, sets `layer` and clears nothing).
    if (!this.layer) this.fillRect(x, y, w, h, this.background());
  }

  background() {
    return this.backgroundColour;
  }

  strokeRect(x, y, w, h) {
    this.path = this.rectPath(x, y, w, h);
    this.stroke();
  }

  beginPath() {
    this.path = "";
  }

  rect(x, y, w, h) {
    this.path += this.rectPath(x, y, w, h);
  }

  moveTo(x, y) {
    this.path += `M${this.point(x, y).join(" ")}`;
  }

  lineTo(x, y) {
    this.path += `L${this.point(x, y).join(" ")}`;
  }

  stroke() {
    const dash = this.state.dash.length ? ` stroke-dasharray="${this.state.dash.join(" ")}"` : "";
    this.emit(
      `<path d="${this.path}" fill="none" stroke="${this.colour(this.state.strokeStyle)}" ` +
        `stroke-width="${this.state.lineWidth}"${dash}/>`,
    );
  }

  fill() {
    this.emit(`<path d="${this.path}" fill="${this.colour(this.state.fillStyle)}"/>`);
  }

  clip() {
    this.clips += 1;
    const id = `clip${this.clips}`;
    const parent = this.state.clip ? ` clip-path="url(#${this.state.clip})"` : "";
    this.defs.push(`<clipPath id="${id}"${parent}><path d="${this.path}"/></clipPath>`);
    this.state.clip = id;
  }

  fillText(text, x, y) {
    const anchor = { left: "start", start: "start", right: "end", end: "end", center: "middle" };
    const baseline = { top: "hanging", middle: "central", bottom: "text-after-edge" };
    const escaped = String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
    const font = this.state.font.replace(/"/g, "'");
    this.emit(
      `<text transform="${this.matrixAttribute()}" x="${x}" y="${y}" style="font: ${font}" ` +
        `fill="${this.colour(this.state.fillStyle)}" text-anchor="${anchor[this.state.textAlign] || "start"}"` +
        ` dominant-baseline="${baseline[this.state.textBaseline] || "alphabetic"}">${escaped}</text>`,
    );
  }

  drawImage(image, ...args) {
    // drawImage(image, dx, dy, dw, dh) or (image, sx, sy, sw, sh, dx, dy, dw, dh).
    const [sx, sy, sw, sh, dx, dy, dw, dh] =
      args.length === 8 ? args : [0, 0, image.width, image.height, ...args];
    if (!(dw > 0 && dh > 0 && sw > 0 && sh > 0)) return;
    const rendering = this.state.smooth ? "" : ` style="image-rendering: pixelated"`;
    this.emit(
      `<g transform="${this.matrixAttribute()}"><svg x="${dx}" y="${dy}" width="${dw}" ` +
        `height="${dh}" viewBox="${sx} ${sy} ${sw} ${sh}" preserveAspectRatio="none" ` +
        `overflow="hidden"><image width="${image.width}" height="${image.height}" ` +
        `href="${image.toDataURL()}"${rendering}/></svg></g>`,
    );
  }

  text() {
    return (
      `<svg xmlns="http://www.w3.org/2000/svg" width="${this.width}" height="${this.height}" ` +
      `viewBox="0 0 ${this.width} ${this.height}"><defs>${this.defs.join("")}</defs>` +
      `${this.parts.join("\n")}</svg>`
    );
  }
}

// The drawing state a painter sets and reads (ctx.font = …), kept in the SvgContext's state.
for (const [name, key] of [
  ["fillStyle", "fillStyle"],
  ["strokeStyle", "strokeStyle"],
  ["lineWidth", "lineWidth"],
  ["font", "font"],
  ["textAlign", "textAlign"],
  ["textBaseline", "textBaseline"],
  ["imageSmoothingEnabled", "smooth"],
]) {
  Object.defineProperty(SvgContext.prototype, name, {
    get() {
      return this.state[key];
    },
    set(value) {
      this.state[key] = value;
    },
  });
}

class Explorer {
  constructor(root, setTriggerValue) {
    this.root = root;
    this.setTriggerValue = setTriggerValue;
    this.payload = null;
    this.options = { scale: null, log: false, dropFirst: false, palette: "viridis" };
    this.head = 0;
    this.sel = null;
    this.sent = null;
    this.hover = null;
    this.draws = 0;
    this.timer = 0;
    this.width = 0;
    this.zoom = 1; // 1: the whole width; the view's top left is (panX, panY) px of the zoomed matrix
    this.panX = 0;
    this.panY = 0;
    this.frameRequest = 0;
    this.build();
    this.resizeObserver = new ResizeObserver(() => {
      const width = this.root.clientWidth;
      if (width > 0 && width !== this.width) this.repaint(true);
    });
    this.resizeObserver.observe(root);
    // The scroll box follows the window's height.
    this.onWindowResize = () => {
      if (window.innerHeight !== this.windowHeight) this.repaint(true);
    };
    window.addEventListener("resize", this.onWindowResize);
    // The codes of a layer whose shown matrix came first: a waiting head is drawn.
    this.onHeads = () => {
      if (this.waiting !== null) this.repaint(false);
    };
    window.addEventListener(HEADS_EVENT, this.onHeads);
    this.waiting = null;
  }

  // ------------------------------------------------------------------ DOM
  build() {
    const root = this.root;
    root.textContent = "";
    root.tabIndex = 0;
    root.setAttribute("role", "group");
    root.setAttribute(
      "aria-label",
      "Attention explorer: arrow keys move the selected token, [ and ] the head, Page Up and " +
        "Page Down the layer, + and - zoom, Shift and arrows pan, ? for help",
    );
    this.titleLine = el("div", "ex-title");
    this.bar = el("div", "ex-bar");
    this.heads = el("div", "ex-heads");
    this.heads.setAttribute("role", "group");
    this.heads.setAttribute("aria-label", "Head shown");
    this.controls = el("div", "ex-controls");
    this.legendBox = el("div", "ex-legend");
    this.legendCanvas = el("canvas", "ex-legend-canvas");
    this.legendCanvas.setAttribute("role", "img");
    this.legendText = el("div", "ex-legend-text");
    this.minimap = el("canvas", "ex-minimap");
    this.minimap.setAttribute("role", "img");
    this.minimap.hidden = true;
    this.legendBox.append(this.legendCanvas, this.legendText, this.minimap);
    this.bar.append(this.heads, this.controls);

    this.scroll = el("div", "ex-scroll");
    this.header = el("div", "ex-header");
    this.colCanvas = el("canvas", "ex-cols");
    this.colCanvas.setAttribute("role", "img");
    this.header.append(this.colCanvas);
    this.body = el("div", "ex-body");
    this.matrix = el("canvas", "ex-matrix");
    this.matrix.setAttribute("role", "img");
    this.overlay = el("canvas", "ex-overlay");
    this.overlay.setAttribute("aria-hidden", "true");
    this.body.append(this.matrix, this.overlay);
    this.scroll.append(this.header, this.body);

    this.barsTitle = el("div", "ex-bars-title");
    this.bars = el("canvas", "ex-bars");
    this.bars.setAttribute("role", "img");
    this.summary = el("div", "ex-summary");
    this.summary.id = `ex-summary-${Math.random().toString(36).slice(2)}`;
    this.summary.setAttribute("aria-live", "polite");
    this.matrix.setAttribute("aria-describedby", this.summary.id);
    this.bars.setAttribute("aria-describedby", this.summary.id);
    this.tip = el("div", "ex-tip");
    this.tip.setAttribute("role", "status");
    this.help = el("div", "ex-help");
    this.help.hidden = true;
    this.help.setAttribute("role", "dialog");
    this.help.setAttribute("aria-label", "Explorer keys");
    root.append(
      this.titleLine,
      this.bar,
      this.legendBox,
      this.scroll,
      this.barsTitle,
      this.bars,
      this.summary,
      this.tip,
      this.help,
    );
    this.buildControls();

    root.addEventListener("keydown", (event) => this.onKey(event));
    // Drag pans, a click (no drag) selects the row, Ctrl / ⌘ + wheel (a pinch) zooms about the
    // pointer, the wheel pans while the view can move (then the page scrolls on).
    this.body.addEventListener("pointerdown", (event) => this.onPointerDown(event));
    this.body.addEventListener("pointermove", (event) => {
      if (this.drag) this.onDrag(event);
      else this.onPointer(event, "matrix");
    });
    this.body.addEventListener("pointerup", (event) => this.onPointerUp(event));
    this.body.addEventListener("pointerleave", () => this.setHover(null));
    this.body.addEventListener("wheel", (event) => this.onWheel(event), { passive: false });
    this.minimap.addEventListener("pointerdown", (event) => {
      this.minimap.setPointerCapture(event.pointerId);
      this.minimapDrag = true;
      this.onMinimap(event);
    });
    this.minimap.addEventListener("pointermove", (event) => {
      if (this.minimapDrag) this.onMinimap(event);
    });
    this.minimap.addEventListener("pointerup", () => {
      this.minimapDrag = false;
    });
    this.bars.addEventListener("pointermove", (event) => this.onPointer(event, "bars"));
    this.bars.addEventListener("pointerleave", () => this.setHover(null));
    this.heads.addEventListener("click", (event) => {
      const chip = event.target.closest(".ex-chip");
      if (chip) this.setHead(Number(chip.dataset.index));
    });
  }

  buildControls() {
    const c = this.controls;
    c.textContent = "";
    const select = (label, name, options) => {
      const wrap = el("label", "ex-control");
      wrap.append(el("span", "", label));
      const box = el("select");
      box.name = name;
      for (const [value, text] of options) {
        const option = el("option", "", text);
        option.value = value;
        box.append(option);
      }
      box.addEventListener("change", () => {
        this.options[name] = box.value;
        this.repaint(false);
      });
      wrap.append(box);
      c.append(wrap);
      return box;
    };
    const check = (label, name, tip) => {
      const wrap = el("label", "ex-control");
      const box = el("input");
      box.type = "checkbox";
      box.name = name;
      box.title = tip;
      box.addEventListener("change", () => {
        this.options[name] = box.checked;
        this.repaint(false);
      });
      wrap.append(box, el("span", "", label));
      wrap.title = tip;
      c.append(wrap);
      return box;
    };
    this.scaleBox = select("Scale", "scale", [
      ["shared", "shared (model)"],
      ["chart", "this matrix"],
      ["fixed", "fixed 0–1"],
    ]);
    this.paletteBox = select("Colours", "palette", [
      ["viridis", "viridis"],
      ["cividis", "cividis"],
      ["ink", "background to ink"],
    ]);
    this.logBox = check("Log", "log", `Log colour scale: ${LOG_DECADES} decades below the top`);
    this.dropBox = check(
      "Without first token",
      "dropFirst",
      "Leave the first key out and renormalise each row over the others",
    );
    const png = el("button", "ex-button", "PNG");
    png.type = "button";
    png.title = "Download exactly what is shown as a PNG image";
    png.addEventListener("click", () => this.exportPng());
    const svg = el("button", "ex-button", "SVG");
    svg.type = "button";
    svg.title = "Download exactly what is shown as an SVG image (text and bars as vectors)";
    svg.addEventListener("click", () => this.exportSvg());
    const helpButton = el("button", "ex-button", "?");
    helpButton.type = "button";
    helpButton.title = "Keys";
    helpButton.setAttribute("aria-label", "Keys (help)");
    helpButton.setAttribute("aria-expanded", "false");
    helpButton.addEventListener("click", () => this.toggleHelp());
    this.helpButton = helpButton;
    c.append(png, svg, helpButton);
    this.help.innerHTML =
      "<b>Keys</b> (click the explorer first)<ul>" +
      "<li><kbd>↑</kbd> <kbd>↓</kbd> (or <kbd>←</kbd> <kbd>→</kbd>): previous / next token</li>" +
      "<li><kbd>Home</kbd> <kbd>End</kbd>: first / last token</li>" +
      "<li><kbd>[</kbd> <kbd>]</kbd>: previous / next head (mean of heads before head 0)</li>" +
      "<li><kbd>Page Up</kbd> <kbd>Page Down</kbd>: previous / next layer (asks the server)</li>" +
      "<li><kbd>+</kbd> <kbd>-</kbd>: zoom in / out about the selected cell, <kbd>0</kbd>: " +
      "the whole matrix</li>" +
      "<li><kbd>Shift</kbd> + arrows: pan</li>" +
      "<li><kbd>?</kbd>: this help, <kbd>Esc</kbd>: close it</li></ul>" +
      "Hover a cell or a bar for its value: the head the page shows is sent as float16 (about " +
      "3 significant digits, shown to 4); another head, until the page follows the keys, as " +
      "8-bit steps of its row's largest value (marked ≈, with the half step). Click a cell to " +
      "select its row; drag to pan; <kbd>Ctrl</kbd> / <kbd>⌘</kbd> + wheel (or a pinch) " +
      "zooms about the pointer, the wheel pans; the minimap (right of the legend) moves the " +
      "view. Every row and column is labelled where 9 and 7 px a token fit, else every " +
      "k-th. Hatched cells were never computed by the model.";
  }

  toggleHelp(force) {
    const open = force === undefined ? this.help.hidden : force;
    this.help.hidden = !open;
    this.helpButton.setAttribute("aria-expanded", String(open));
  }

  // ------------------------------------------------------------------ data
  update(payload) {
    this.long = payload.long || null;
    if (this.long) {
      if (!this.adoptLong(payload)) return;
    } else if (!this.adoptLayer(payload)) return;
    this.adopt(payload);
  }

  adoptLayer(payload) {
    // The codes come once per layer and each head's float16 once; later runs send their keys
    // only (null arrays). One layer is kept: 13.6 MB of float32 at 512 tokens.
    // A compare panel keeps its own (`dataStore`); the Attention page's one explorer the window's.
    const store =
      this.dataStore || window.__atlasExplorerData || (window.__atlasExplorerData = { key: null });
    const newLayer = payload.codes !== null || (payload.later && store.key !== payload.key);
    if (newLayer) {
      store.key = payload.key;
      store.codes = store.scales = null; // a head-first message: the codes follow (takeHeads)
      if (payload.codes !== null) setCodes(store, payload.codes, payload.scales);
      store.signed = payload.signed;
      store.shape = payload.shape;
      // Each matrix is decoded when first drawn: a layer change decodes the shown one only.
      store.matrices = new Array(payload.shape[0]).fill(null);
      store.exact = new Map(); // exact key → the matrix it made exact
    }
    const missing = store.key !== payload.key || (payload.exact === null && !store.exact.has(payload.exactKey));
    if (missing) {
      // A reloaded component without its copy: ask for the data, keep what is drawn.
      this.root.dataset.missing = payload.key;
      this.setTriggerValue("view", { need: true });
      return false;
    }
    if (payload.exact !== null) {
      // The shown matrix's float16 replaces its 8-bit values: hover reads the value itself.
      store.matrices[payload.exactOf] = decodeFloat16(payload.exact);
      store.exact.set(payload.exactKey, payload.exactOf);
    }
    readHeadsMessage(); // they may have come before this message was adopted
    takeHeads(store);
    this.exactHeads = new Set(store.exact.values());
    this.store = store;
    return true;
  }

  /** Whether matrix `m`'s values are here (its float16, or the layer's codes). */
  hasValues(m) {
    return Boolean(this.long || this.store.matrices[m] || this.store.codes);
  }

  /** The shown head has no values yet (its codes follow the shown matrix): nothing of another
   * head stays drawn; the codes repaint it (HEADS_EVENT), or it asks for them. */
  wait() {
    const name = this.payload.names[this.head];
    if (this.waiting === null) {
      clearTimeout(this.waitTimer);
      this.waitTimer = setTimeout(() => {
        if (this.waiting !== null) this.setTriggerValue("view", { need: true });
      }, HEADS_WAIT_MS);
    }
    this.waiting = name;
    this.root.dataset.waiting = name;
    this.root.dataset.head = name;
    this.hover = null;
    this.tip.style.display = "none";
    for (const canvas of [this.matrix, this.overlay, this.bars, this.minimap]) {
      canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
    }
    const ctx = this.matrix.getContext("2d");
    ctx.fillStyle = this.text;
    ctx.font = `13px ${this.font}`;
    ctx.fillText(`Head ${name}: loading…`, 12, 24);
    this.summary.textContent = `Head ${name}: loading its weights.`;
  }

  /** Matrix `m`'s values, `[rows × columns]` row-major (decoded from its codes at first use). */
  valuesOf(m) {
    const store = this.store;
    if (!store.matrices[m]) {
      const [, rows, cols] = store.shape;
      store.matrices[m] = decodeCodes(
        store.codes.subarray(m * rows * cols, (m + 1) * rows * cols),
        store.scales.subarray(m * rows, (m + 1) * rows),
        store.signed,
      );
    }
    return store.matrices[m];
  }

  adoptLong(payload) {
    // A long input: the head's pooled overview once per layer, head and pooling; exact tiles
    // as asked for (kept across runs, the most recent MAX_TILES); the selected row each run.
    const store =
      window.__atlasExplorerLong || (window.__atlasExplorerLong = { key: null, tiles: new Map() });
    if (payload.overview !== null) {
      store.key = payload.key;
      store.overview = decodeFloat16(payload.overview);
    } else if (store.key !== payload.key) {
      this.root.dataset.missing = payload.key;
      this.setTriggerValue("view", { need: true });
      return false;
    }
    const onlyTiles =
      this.payload &&
      this.payload.long &&
      payload.overview === null &&
      this.payload.key === payload.key &&
      this.payload.sel === payload.sel;
    const data = payload.tileData;
    let at = 0;
    for (const [r, c, h, w] of payload.tiles) {
      const values = decodeFloat16(data.subarray(at, at + 2 * h * w));
      at += 2 * h * w;
      const name = `${payload.layer}:${payload.head}:${r}:${c}`;
      store.tiles.delete(name);
      store.tiles.set(name, { r, c, h, w, values, canvas: null, colours: "" });
    }
    while (store.tiles.size > MAX_TILES) store.tiles.delete(store.tiles.keys().next().value);
    this.tileStore = store.tiles;
    this.tilesAsked = null; // the answer came: ask for what is still missing
    this.overview = store.overview;
    this.exactRow = payload.row === null ? null : decodeFloat16(payload.row);
    this.exactRowOf = payload.rowOf;
    if (onlyTiles) {
      this.payload = payload;
      this.paintView();
      return false;
    }
    return true;
  }

  adopt(payload) {
    const previous = this.payload;
    const sameShape =
      previous && JSON.stringify(previous.shape) === JSON.stringify(payload.shape);
    this.payload = payload;
    this.rows = payload.rows;
    this.cols = payload.cols || payload.rows;
    this.cross = Boolean(payload.cols);
    this.oneWay = this.cross || Boolean(this.long); // bars of the row only (no column)
    [this.count, this.nRows, this.nCols] = payload.shape;
    // Python's head and selection win when they changed there; an echo of what this component
    // sent keeps whatever the keys have moved to since.
    const echo = this.sent && payload.head === this.sent.head && payload.sel === this.sent.sel;
    if (!previous || !sameShape) {
      this.head = payload.head;
      this.sel = payload.sel;
      this.zoom = 1;
      this.panX = 0;
      this.panY = 0;
    } else if (!echo) {
      if (payload.head !== previous.head || this.head >= this.count) this.head = payload.head;
      if (payload.sel !== previous.sel) this.sel = payload.sel;
    }
    if (this.sel !== null && this.sel >= this.nRows) this.sel = payload.sel;
    if (this.options.scale === null || (payload.shared === null && this.options.scale === "shared"))
      this.options.scale = payload.shared === null && payload.scale === "shared" ? "chart" : payload.scale;
    this.scaleBox.value = this.options.scale;
    this.scaleBox.querySelector("option[value=shared]").disabled = payload.shared === null;
    // The sidebar's log and first-token settings: applied when they change there (the boxes
    // change them in the browser in between).
    for (const [name, box] of [["log", this.logBox], ["dropFirst", this.dropBox]]) {
      if (name in payload && (!previous || payload[name] !== previous[name])) this.options[name] = payload[name];
      box.checked = this.options[name];
    }
    this.logBox.disabled = payload.signed;
    this.dropBox.disabled = payload.signed || this.nCols < 2 || Boolean(this.long);
    if (payload.signed || this.long) this.options.dropFirst = false;
    if (payload.signed) {
      this.options.log = false;
      this.options.dropFirst = false;
      this.logBox.checked = false;
      this.dropBox.checked = false;
    }
    this.buildHeads();
    this.repaint(true);
  }

  buildHeads() {
    const names = this.payload.names;
    const key = names.join(",");
    if (key !== this.headKey) {
      this.headKey = key;
      this.heads.textContent = "";
      if (names.length > 1) this.heads.append(el("span", "ex-heads-title", "Head"));
      this.chips = names.map((name, index) => {
        const chip = el("button", "ex-chip", name);
        chip.type = "button";
        chip.dataset.index = String(index);
        chip.title = name === "mean" ? "Mean of the layer's heads" : `Head ${name}`;
        if (names.length > 1) this.heads.append(chip);
        return chip;
      });
    }
    this.chips.forEach((chip, index) => chip.setAttribute("aria-pressed", String(index === this.head)));
  }

  /** Value of matrix `m` at (`row`, `col`) after the "without first token" option. */
  cell(m, row, col) {
    if (this.long) return this.longCell(row, col);
    const v = this.valuesOf(m)[row * this.nCols + col];
    if (!this.options.dropFirst) return v;
    if (col === 0) return NaN;
    return v / this.rowRest[row];
  }

  /** A long input's exact weight at (`row`, `col`): from a tile or the selected row; NaN when
   * neither is here (the overview has only blocks: `block`). */
  longCell(row, col) {
    if (row === this.sel && this.exactRow && this.exactRowOf === this.sel) return this.exactRow[col];
    const tile = this.tileAt(row, col);
    return tile ? tile.values[(row - tile.r) * tile.w + (col - tile.c)] : NaN;
  }

  tileAt(row, col) {
    const size = this.long.tile;
    const r = row - (row % size);
    const c = col - (col % size);
    return this.tileStore.get(`${this.payload.layer}:${this.payload.head}:${r}:${c}`) || null;
  }

  /** The overview block holding (`row`, `col`): its edges and pooled value. */
  block(row, col) {
    const find = (edges, i) => {
      let lo = 0;
      let hi = edges.length - 2;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (edges[mid] <= i) lo = mid;
        else hi = mid - 1;
      }
      return lo;
    };
    const { rowEdges, colEdges } = this.long;
    const br = find(rowEdges, row);
    const bc = find(colEdges, col);
    return {
      rows: [rowEdges[br], rowEdges[br + 1] - 1],
      cols: [colEdges[bc], colEdges[bc + 1] - 1],
      value: this.overview[br * (colEdges.length - 1) + bc],
    };
  }

  prepareMatrix() {
    if (this.long) {
      // The chart's own top: the overview's largest block (max pooling: the matrix's largest).
      let top = 0;
      for (const v of this.overview) if (v > top) top = v;
      this.chartTop = top > 0 ? top : 1;
      this.top = this.options.scale === "chart" ? this.chartTop : 1;
      return;
    }
    // Row sums without the first key, for the renormalisation (NaN cells count as 0).
    const m = this.head;
    if (this.options.dropFirst) {
      this.rowRest = new Float32Array(this.nRows);
      for (let r = 0; r < this.nRows; r += 1) {
        let sum = 0;
        const values = this.valuesOf(m);
        const base = r * this.nCols;
        for (let c = 1; c < this.nCols; c += 1) {
          const v = values[base + c];
          if (Number.isFinite(v)) sum += v;
        }
        this.rowRest[r] = sum > 0 ? sum : NaN;
      }
    }
    let top = 0;
    for (let r = 0; r < this.nRows; r += 1) {
      for (let c = 0; c < this.nCols; c += 1) {
        const v = Math.abs(this.cell(m, r, c));
        if (v > top) top = v;
      }
    }
    const scale = this.options.scale;
    this.chartTop = top > 0 ? top : 1;
    this.top = scale === "fixed" ? 1 : scale === "shared" ? this.payload.shared : this.chartTop;
  }

  /** Colour position in [0, 1] of value `v` (NaN: empty). Signed data: 0.5 is zero. */
  position(v) {
    if (!Number.isFinite(v)) return NaN;
    if (this.payload.signed) return Math.max(0, Math.min(1, 0.5 + v / (2 * this.top)));
    if (this.options.log) {
      if (v <= 0) return 0;
      return Math.max(0, Math.min(1, 1 + Math.log10(v / this.top) / LOG_DECADES));
    }
    return Math.max(0, Math.min(1, v / this.top));
  }

  // ------------------------------------------------------------------ theme and geometry
  readTheme() {
    const style = getComputedStyle(this.root);
    const ctx = this.legendCanvas.getContext("2d");
    this.text = style.color || "#31333f";
    const background = parseColour(ctx, style.getPropertyValue("--st-background-color").trim(), "#ffffff");
    const luminance = (0.2126 * background[0] + 0.7152 * background[1] + 0.0722 * background[2]) / 255;
    this.dark = luminance < 0.5;
    this.background = background;
    this.root.dataset.theme = this.dark ? "dark" : "light";
    this.font = style.fontFamily || "sans-serif";
    this.primary = style.getPropertyValue("--st-primary-color").trim() || "#ff4b4b";
    this.grid = this.dark ? "rgba(255,255,255,0.35)" : "rgba(0,0,0,0.3)";
    let stops = PALETTES[this.options.palette];
    if (this.payload.signed) stops = ["#2166ac", "#67a9cf", background, "#ef8a62", "#b2182b"];
    else if (!stops) stops = [background, this.dark ? "#fde725" : "#08306b"];
    this.lut = lut(stops);
  }

  layout() {
    // What does not depend on the zoom: widths, the gutter, the header, the whole view's pitch.
    const width = Math.max(160, this.root.clientWidth);
    this.width = this.root.clientWidth;
    const ctx = this.colCanvas.getContext("2d");
    const labelFont = (size) => `${size}px ${this.font}`;
    const widest = (labels) => labels.reduce((w, t) => Math.max(w, ctx.measureText(t).width), 0);
    // The row labels' font follows the row height, which follows the column width: the first
    // guess assumes the narrowest rows, the gutter then fits the labels at that font.
    const guess = Math.min(MAX_ROW_PX, Math.max(MIN_ROW_PX, (width - 60) / this.nCols));
    ctx.font = labelFont(Math.min(12, Math.max(9, guess - 2)));
    const gutter = Math.round(Math.min(120, Math.max(36, widest(this.rows) + 12)));
    const gridWidth = Math.max(40, width - gutter - 2);
    const colPitch0 = gridWidth / this.nCols;
    // The column labels' band grows with their font as the zoom grows (measured once at 10 px).
    ctx.font = labelFont(10);
    const colWidest10 = widest(this.cols);
    // The box is as tall as the window allows; a taller matrix pans under its labels.
    this.windowHeight = window.innerHeight;
    const viewMax = Math.max(240, Math.round(window.innerHeight * 0.78) - 96);
    // Up to the explorer's whole length every row is labelled in the whole view (rows of at
    // least MIN_ROW_PX: the matrix is taller than its box); a long input's whole view fits.
    const rowPitch0 = this.long
      ? viewMax / this.nRows
      : Math.min(MAX_ROW_PX, Math.max(MIN_ROW_PX, colPitch0));
    this.geometry = { width, gutter, gridWidth, colPitch0, rowPitch0, colWidest10, viewMax };
    const ratio = window.devicePixelRatio || 1;
    this.size = (canvas, w, h) => {
      canvas.width = Math.round(w * ratio);
      canvas.height = Math.round(h * ratio);
      canvas.style.width = `${w}px`;
      canvas.style.height = `${h}px`;
      const c = canvas.getContext("2d");
      c.setTransform(ratio, 0, 0, ratio, 0, 0);
      return c;
    };
    this.size(this.legendCanvas, Math.min(260, Math.max(140, width * 0.3)), 34);
    this.frame(true);
  }

  maxZoom() {
    const g = this.geometry;
    return Math.max(1, MAX_CELL_PX / Math.min(g.colPitch0, g.rowPitch0));
  }

  frame(resized) {
    // What the zoom and pan decide: pitches, the visible cells, which labels fit.
    const g = this.geometry;
    this.zoom = Math.max(1, Math.min(this.maxZoom(), this.zoom));
    g.colPitch = g.colPitch0 * this.zoom;
    g.rowPitch = g.rowPitch0 * this.zoom;
    g.contentWidth = g.colPitch * this.nCols;
    g.contentHeight = g.rowPitch * this.nRows;
    const height = Math.ceil(Math.min(g.contentHeight, g.viewMax));
    this.panX = Math.max(0, Math.min(g.contentWidth - g.gridWidth, this.panX));
    this.panY = Math.max(0, Math.min(g.contentHeight - height, this.panY));
    g.colStep = Math.max(1, Math.ceil(MIN_LABEL_PX / g.colPitch - 1e-9));
    g.colFont = Math.min(12, Math.max(6.5, g.colPitch * g.colStep - 0.5));
    g.rowStep = Math.max(1, Math.ceil(MIN_ROW_LABEL_PX / g.rowPitch - 1e-9));
    g.rowFont = Math.min(12, Math.max(7, g.rowPitch * g.rowStep - 2));
    g.c0 = Math.max(0, Math.floor(this.panX / g.colPitch));
    g.c1 = Math.min(this.nCols, Math.ceil((this.panX + g.gridWidth) / g.colPitch - 1e-9));
    g.r0 = Math.max(0, Math.floor(this.panY / g.rowPitch));
    g.r1 = Math.min(this.nRows, Math.ceil((this.panY + height) / g.rowPitch - 1e-9));
    const header = Math.round(Math.min(96, Math.max(28, (g.colWidest10 * g.colFont) / 10 + 10)));
    if (resized || header !== g.headerHeight) {
      g.headerHeight = header;
      this.size(this.colCanvas, g.width, header);
      this.barsHeight = (this.oneWay ? BAR_PX : 2 * BAR_PX) + header + 8;
      this.size(this.bars, g.width, this.barsHeight);
    }
    if (resized || height !== g.height) {
      g.height = height;
      this.size(this.matrix, g.width, height);
      this.size(this.overlay, g.width, height);
      this.body.style.height = `${height}px`;
    }
    this.whole = this.zoom === 1 && g.contentHeight <= height + 0.5;
    Object.assign(this.root.dataset, {
      zoom: this.zoom.toFixed(2),
      view: `${g.r0}-${g.r1 - 1}x${g.c0}-${g.c1 - 1}`,
    });
  }

  /** x of column `c`'s left edge and y of row `r`'s top, in the matrix canvas. */
  x(c) {
    return this.geometry.gutter + c * this.geometry.colPitch - this.panX;
  }

  y(r) {
    return r * this.geometry.rowPitch - this.panY;
  }

  // ------------------------------------------------------------------ painting
  repaint(relayout) {
    if (!this.payload) return;
    if (!this.hasValues(this.head)) {
      this.readTheme();
      if (relayout || !this.geometry) this.layout();
      this.wait();
      return;
    }
    this.waiting = null;
    delete this.root.dataset.waiting;
    const started = performance.now();
    const steps = [];
    const step = (name, f) => {
      const t = performance.now();
      f();
      steps.push(`${name} ${(performance.now() - t).toFixed(1)}`);
    };
    step("theme", () => this.readTheme());
    if (relayout || !this.geometry) step("layout", () => this.layout());
    step("prepare", () => this.prepareMatrix());
    step("cells", () => this.paintCells());
    step("view", () => this.paintView());
    step("legend", () => this.paintLegend());
    step("describe", () => this.describe());
    this.root.dataset.paintSteps = steps.join(", ");
    this.draws += 1;
    const d = this.root.dataset;
    d.draws = String(this.draws);
    d.head = this.payload.names[this.head];
    d.selected = this.sel === null ? "" : String(this.sel);
    d.layer = String(this.payload.layer);
    d.paintMs = (performance.now() - started).toFixed(1);
  }

  paintView() {
    // Everything the zoom and pan move: cheap (no cell is recoloured), once a frame at most.
    if (this.waiting !== null) return;
    this.frame(false);
    this.paintMatrix();
    this.paintColumns();
    this.paintOverlay();
    this.paintBars();
    this.paintMinimap();
    this.requestTiles();
  }

  requestView() {
    if (this.frameRequest) return;
    this.frameRequest = requestAnimationFrame(() => {
      this.frameRequest = 0;
      const started = performance.now();
      this.paintView();
      this.root.dataset.viewMs = (performance.now() - started).toFixed(2);
      this.root.dataset.frames = String(Number(this.root.dataset.frames || 0) + 1);
    });
  }

  zoomBy(factor, ax, ay) {
    // Zoom by `factor` keeping the point (ax, ay) of the view (px from the grid's top left)
    // over the same cell.
    const g = this.geometry;
    const zoom = Math.max(1, Math.min(this.maxZoom(), this.zoom * factor));
    const f = zoom / this.zoom;
    if (f === 1) return false;
    const anchorX = ax === undefined ? g.gridWidth / 2 : ax;
    const anchorY = ay === undefined ? g.height / 2 : ay;
    this.panX = (this.panX + anchorX) * f - anchorX;
    this.panY = (this.panY + anchorY) * f - anchorY;
    this.zoom = zoom;
    this.frame(false); // the geometry follows at once: the next key's anchor reads it
    this.requestView();
    return true;
  }

  zoomOnSelection(factor) {
    // Keys zoom about the selected cell when it is in view, else about the view's centre.
    const g = this.geometry;
    if (this.sel !== null) {
      const col = this.cross ? null : this.sel;
      const ay = this.y(this.sel) + g.rowPitch / 2;
      const ax = col === null ? undefined : this.x(col) - g.gutter + g.colPitch / 2;
      const inView = ay >= 0 && ay <= g.height && (ax === undefined || (ax >= 0 && ax <= g.gridWidth));
      if (inView) return this.zoomBy(factor, ax, ay);
    }
    return this.zoomBy(factor);
  }

  panBy(dx, dy) {
    const x = this.panX;
    const y = this.panY;
    this.panX += dx;
    this.panY += dy;
    this.frame(false);
    const moved = Math.abs(this.panX - x) > 0.01 || Math.abs(this.panY - y) > 0.01;
    if (moved) this.requestView();
    return moved;
  }

  paintCells() {
    this.cellsVersion = (this.cellsVersion || 0) + 1;
    if (this.long) {
      this.paintOverview();
      return;
    }
    // One pixel per cell in an offscreen canvas, scaled up without smoothing.
    if (!this.cells || this.cells.width !== this.nCols || this.cells.height !== this.nRows) {
      this.cells = document.createElement("canvas");
      this.cells.width = this.nCols;
      this.cells.height = this.nRows;
    }
    const cols = this.nCols;
    this.putColours(this.cells, cols, this.nRows, (i) =>
      this.entry(this.cell(this.head, Math.floor(i / cols), i % cols)),
    );
  }

  /** The palette entry (×3) of value `v`, or -1 for an empty cell (transparent: the hatching
   * shows through). */
  entry(v) {
    const t = this.position(v);
    return Number.isNaN(t) ? -1 : 3 * Math.round(t * 255);
  }

  /** Fills `canvas` (`w` × `h`) with one pixel per cell, pixel `i` coloured by palette entry
   * `entryOf(i)` (row-major). */
  putColours(canvas, w, h, entryOf) {
    const ctx = canvas.getContext("2d");
    const image = ctx.createImageData(w, h);
    const data = image.data;
    const table = this.lut;
    for (let i = 0, p = 0; i < w * h; i += 1, p += 4) {
      const j = entryOf(i);
      if (j < 0) continue;
      data[p] = table[j];
      data[p + 1] = table[j + 1];
      data[p + 2] = table[j + 2];
      data[p + 3] = 255;
    }
    ctx.putImageData(image, 0, 0);
  }

  hatch(ctx) {
    // The hatching of cells never computed; its 6 px tile drawn once per theme.
    if (!this.hatchTile || this.hatchTile.dark !== this.dark) {
      const tile = document.createElement("canvas");
      tile.width = tile.height = 6;
      const t = tile.getContext("2d");
      t.strokeStyle = this.dark ? "rgba(255,255,255,0.28)" : "rgba(0,0,0,0.22)";
      t.lineWidth = 1;
      t.beginPath();
      t.moveTo(0, 6);
      t.lineTo(6, 0);
      t.stroke();
      this.hatchTile = { canvas: tile, dark: this.dark };
    }
    return ctx.createPattern(this.hatchTile.canvas, "repeat");
  }

  paintMatrix(ctx = this.matrix.getContext("2d")) {
    // \`ctx\`: this canvas, or an SvgContext for the SVG export.
    const g = this.geometry;
    ctx.clearRect(0, 0, g.width, g.height);
    ctx.save();
    ctx.beginPath();
    ctx.rect(g.gutter, 0, g.gridWidth, g.height);
    ctx.clip();
    ctx.fillStyle = this.hatch(ctx);
    ctx.fillRect(g.gutter, 0, g.gridWidth, g.height);
    // The visible part of the one-pixel-per-cell image, scaled up without smoothing.
    ctx.imageSmoothingEnabled = false;
    const sx = this.cells.width / this.nCols;
    const sy = this.cells.height / this.nRows;
    ctx.drawImage(
      this.cells,
      (this.panX / g.colPitch) * sx,
      (this.panY / g.rowPitch) * sy,
      (g.gridWidth / g.colPitch) * sx,
      (g.height / g.rowPitch) * sy,
      g.gutter,
      0,
      g.gridWidth,
      g.height,
    );
    this.paintTiles(ctx);
    // Sentence B of a pair: a rule between the sentences on both axes.
    const segB = this.payload.segB;
    if (segB !== null) {
      ctx.strokeStyle = this.text;
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.moveTo(g.gutter, this.y(segB));
      ctx.lineTo(g.gutter + g.gridWidth, this.y(segB));
      ctx.moveTo(this.x(segB), 0);
      ctx.lineTo(this.x(segB), g.height);
      ctx.stroke();
    }
    ctx.restore();
    if (segB !== null) {
      // Tags in the gutter: sentence A's rows blue, B's orange.
      const split = Math.max(0, Math.min(g.height, this.y(segB)));
      ctx.fillStyle = this.dark ? "rgba(86,180,233,0.35)" : "rgba(0,114,178,0.2)";
      ctx.fillRect(0, 0, 4, split);
      ctx.fillStyle = this.dark ? "rgba(230,159,0,0.45)" : "rgba(230,159,0,0.35)";
      ctx.fillRect(0, split, 4, g.height - split);
    }
    // Row labels of the rows in view: every row where MIN_ROW_LABEL_PX fit, else every k-th
    // (and the selected one); they stay beside the grid whatever the pan.
    ctx.fillStyle = this.text;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    let drawn = 0;
    let inView = 0; // rows whose middle is in view: those a label can name
    for (let r = g.r0; r < g.r1; r += 1) {
      const middle = this.y(r) + g.rowPitch / 2;
      if (middle < 0 || middle > g.height) continue;
      inView += 1;
      const chosen = r === this.sel;
      const crowded = this.sel !== null && !chosen && Math.abs(r - this.sel) < g.rowStep;
      if ((r % g.rowStep !== 0 || crowded) && !chosen) continue;
      ctx.font = `${chosen ? "bold " : ""}${g.rowFont}px ${this.font}`;
      ctx.fillText(this.clip(ctx, this.rows[r], g.gutter - 8), g.gutter - 4, middle);
      drawn += 1;
    }
    Object.assign(this.root.dataset, {
      rowLabels: String(drawn),
      rowsInView: String(inView),
      gutter: String(g.gutter),
      rowPx: g.rowPitch.toFixed(2),
    });
  }

  paintOverview() {
    // A long input's pooled blocks as an image of at most OVERVIEW_PX a side, each pixel the
    // block holding its tokens (blocks differ by a token when the length does not divide).
    const width = Math.min(this.nCols, OVERVIEW_PX);
    const height = Math.min(this.nRows, OVERVIEW_PX);
    if (!this.cells || this.cells.width !== width || this.cells.height !== height) {
      this.cells = document.createElement("canvas");
      this.cells.width = width;
      this.cells.height = height;
    }
    const blocksOf = (edges, pixels, n) => {
      const out = new Int32Array(pixels);
      let b = 0;
      for (let p = 0; p < pixels; p += 1) {
        const token = Math.floor(((p + 0.5) * n) / pixels);
        while (edges[b + 1] <= token) b += 1;
        out[p] = b;
      }
      return out;
    };
    const { rowEdges, colEdges } = this.long;
    const rowBlock = blocksOf(rowEdges, height, this.nRows);
    const colBlock = blocksOf(colEdges, width, this.nCols);
    const blocks = colEdges.length - 1;
    // Colour each block once, then copy it to its pixels.
    const colours = this.overview.map((v) => this.entry(v));
    this.putColours(this.cells, width, height, (i) =>
      colours[rowBlock[Math.floor(i / width)] * blocks + colBlock[i % width]],
    );
  }

  paintTiles(ctx) {
    // A long input's exact tiles in view, over the pooled overview; each coloured once per
    // palette and scale.
    if (!this.long) return;
    const g = this.geometry;
    const prefix = `${this.payload.layer}:${this.payload.head}:`;
    const colours = `${this.options.palette}|${this.top}|${this.options.log}|${this.dark}`;
    const hatch = this.hatch(ctx);
    let drawn = 0;
    for (const [name, tile] of this.tileStore) {
      if (!name.startsWith(prefix)) continue;
      if (tile.r >= g.r1 || tile.r + tile.h <= g.r0 || tile.c >= g.c1 || tile.c + tile.w <= g.c0)
        continue;
      if (tile.colours !== colours) this.colourTile(tile, colours);
      // The tile replaces the blocks under it: its empty cells are hatched, not pooled.
      const box = [this.x(tile.c), this.y(tile.r), tile.w * g.colPitch, tile.h * g.rowPitch];
      ctx.clearRect(...box);
      ctx.fillStyle = hatch;
      ctx.fillRect(...box);
      ctx.drawImage(tile.canvas, ...box);
      drawn += 1;
    }
    this.root.dataset.tilesDrawn = String(drawn);
    this.root.dataset.tiles = String(this.tileStore.size);
  }

  colourTile(tile, colours) {
    if (!tile.canvas) {
      tile.canvas = document.createElement("canvas");
      tile.canvas.width = tile.w;
      tile.canvas.height = tile.h;
    }
    this.putColours(tile.canvas, tile.w, tile.h, (i) => this.entry(tile.values[i]));
    tile.colours = colours;
  }

  requestTiles() {
    // Once the view rests zoomed in past TILE_MIN_PX a token, ask the server for the exact
    // tiles in view this browser lacks (nearest the centre first); one request at a time.
    if (!this.long || this.tilesAsked) return;
    const g = this.geometry;
    if (g.colPitch < TILE_MIN_PX || g.rowPitch < TILE_MIN_PX) return;
    clearTimeout(this.tileTimer);
    this.tileTimer = setTimeout(() => {
      const size = this.long.tile;
      const prefix = `${this.payload.layer}:${this.payload.head}:`;
      const missing = [];
      const mid = [(g.r0 + g.r1) / 2, (g.c0 + g.c1) / 2];
      for (let r = g.r0 - (g.r0 % size); r < g.r1; r += size) {
        for (let c = g.c0 - (g.c0 % size); c < g.c1; c += size) {
          if (!this.tileStore.has(`${prefix}${r}:${c}`)) missing.push([r, c]);
        }
      }
      if (!missing.length) return;
      const distance = ([r, c]) => Math.abs(r + size / 2 - mid[0]) + Math.abs(c + size / 2 - mid[1]);
      missing.sort((a, b) => distance(a) - distance(b));
      this.tilesAsked = missing.slice(0, TILE_ASK_MAX);
      this.root.dataset.tilesAsked = String(this.tilesAsked.length);
      this.setTriggerValue("tiles", { tiles: this.tilesAsked });
    }, TILE_DELAY_MS);
  }

  clip(ctx, text, room) {
    if (ctx.measureText(text).width <= room) return text;
    let cut = text;
    while (cut.length > 1 && ctx.measureText(`${cut}…`).width > room) cut = cut.slice(0, -1);
    return `${cut}…`;
  }

  columnLabels(ctx, top, height, rotateUp) {
    // Rotated column labels of the columns in view, in a band of `height` px starting at
    // `top`, reading upwards, their ends next to the grid. Thin columns get every
    // colStep-th label, plus the selected one.
    const g = this.geometry;
    let drawn = 0;
    ctx.save();
    ctx.beginPath();
    ctx.rect(g.gutter, top, g.gridWidth, height);
    ctx.clip();
    ctx.fillStyle = this.text;
    ctx.textBaseline = "middle";
    const sel = this.cross ? null : this.sel;
    for (let c = g.c0; c < g.c1; c += 1) {
      const chosen = c === sel;
      // The selected column is always labelled; thinned labels too close to it give way.
      const crowded = sel !== null && !chosen && Math.abs(c - sel) < g.colStep;
      if ((c % g.colStep !== 0 || crowded) && !chosen) continue;
      ctx.save();
      ctx.translate(this.x(c) + 0.5 * g.colPitch, rotateUp ? top + height - 4 : top + 4);
      ctx.rotate(-Math.PI / 2);
      ctx.textAlign = rotateUp ? "left" : "right";
      ctx.font = `${chosen ? "bold " : ""}${g.colFont}px ${this.font}`;
      ctx.fillText(this.clip(ctx, this.cols[c], height - 8), 0, 0);
      ctx.restore();
      drawn += 1;
    }
    ctx.restore();
    return drawn;
  }

  paintColumns(ctx = this.colCanvas.getContext("2d")) {
    // \`ctx\`: this canvas, or an SvgContext for the SVG export.
    const g = this.geometry;
    ctx.clearRect(0, 0, g.width, g.headerHeight);
    this.root.dataset.colLabels = String(this.columnLabels(ctx, 0, g.headerHeight, true));
    this.root.dataset.colsInView = String(g.c1 - g.c0);
    this.root.dataset.colLabelPx = g.colPitch.toFixed(2);
    this.colCanvas.setAttribute(
      "aria-label",
      `Column labels: tokens ${g.c0}–${g.c1 - 1} of ${this.cols.length}`,
    );
  }

  paintOverlay(ctx = this.overlay.getContext("2d")) {
    // \`ctx\`: this canvas, or an SvgContext for the SVG export.
    const g = this.geometry;
    ctx.clearRect(0, 0, g.width, g.height);
    ctx.save();
    ctx.beginPath();
    ctx.rect(g.gutter, 0, g.gridWidth, g.height);
    ctx.clip();
    ctx.lineWidth = 2;
    ctx.strokeStyle = this.primary;
    const left = Math.max(g.gutter, this.x(0));
    const right = Math.min(g.gutter + g.gridWidth, this.x(this.nCols));
    if (this.sel !== null) {
      ctx.strokeRect(left + 1, this.y(this.sel) + 1, right - left - 2, g.rowPitch - 2);
      if (!this.cross) {
        const top = Math.max(0, this.y(0));
        const bottom = Math.min(g.height, this.y(this.nRows));
        ctx.setLineDash([4, 3]);
        ctx.strokeRect(this.x(this.sel) + 1, top + 1, g.colPitch - 2, bottom - top - 2);
        ctx.setLineDash([]);
      }
    }
    if (this.hover && this.hover.where === "matrix") {
      const { row, col } = this.hover;
      ctx.strokeStyle = this.dark ? "#ffffff" : "#000000";
      ctx.lineWidth = 1.5;
      ctx.strokeRect(this.x(col), this.y(row), g.colPitch, g.rowPitch);
    }
    ctx.restore();
  }

  paintMinimap() {
    // The whole matrix, small, with the part in view outlined; shown when the view is not the
    // whole matrix. A click or a drag on it moves the view there.
    const g = this.geometry;
    this.minimap.hidden = this.whole;
    this.root.dataset.minimap = this.whole ? "" : "shown";
    if (this.whole) return;
    const aspect = (this.nRows * g.rowPitch0) / (this.nCols * g.colPitch0);
    const w = aspect > 1 ? Math.max(24, MINIMAP_PX / aspect) : MINIMAP_PX;
    const h = aspect > 1 ? MINIMAP_PX : Math.max(24, MINIMAP_PX * aspect);
    if (this.minimapSize !== `${w}x${h}`) {
      this.minimapSize = `${w}x${h}`;
      this.size(this.minimap, w, h);
    }
    // The matrix at the minimap's size, drawn once per colouring (not once a frame).
    if (!this.minimapBase || this.minimapBase.cells !== this.cellsVersion || this.minimapBase.size !== this.minimapSize) {
      const base = document.createElement("canvas");
      const ratio = window.devicePixelRatio || 1;
      base.width = Math.round(w * ratio);
      base.height = Math.round(h * ratio);
      const b = base.getContext("2d");
      b.scale(ratio, ratio);
      b.fillStyle = this.hatch(b);
      b.fillRect(0, 0, w, h);
      b.imageSmoothingEnabled = true;
      b.drawImage(this.cells, 0, 0, w, h);
      this.minimapBase = { canvas: base, cells: this.cellsVersion, size: this.minimapSize };
    }
    const ctx = this.minimap.getContext("2d");
    ctx.clearRect(0, 0, w, h);
    ctx.drawImage(this.minimapBase.canvas, 0, 0, w, h);
    const fx = w / g.contentWidth;
    const fy = h / g.contentHeight;
    const box = [this.panX * fx, this.panY * fy, g.gridWidth * fx, g.height * fy];
    // Dim what is out of view, outline what is in it.
    ctx.fillStyle = this.dark ? "rgba(0,0,0,0.45)" : "rgba(255,255,255,0.5)";
    ctx.fillRect(0, 0, w, box[1]);
    ctx.fillRect(0, box[1] + box[3], w, h - box[1] - box[3]);
    ctx.fillRect(0, box[1], box[0], box[3]);
    ctx.fillRect(box[0] + box[2], box[1], w - box[0] - box[2], box[3]);
    ctx.strokeStyle = this.primary;
    ctx.lineWidth = 2;
    ctx.strokeRect(box[0], box[1], Math.max(2, box[2]), Math.max(2, box[3]));
    this.minimapScale = [fx, fy];
    this.minimap.setAttribute(
      "aria-label",
      `Minimap: rows ${g.r0}–${g.r1 - 1} and columns ${g.c0}–${g.c1 - 1} of ` +
        `${this.nRows} × ${this.nCols} in view (zoom ${this.zoom.toFixed(1)}×)`,
    );
  }

  onMinimap(event) {
    // Centre the view on the point of the minimap under the pointer.
    const g = this.geometry;
    const box = this.minimap.getBoundingClientRect();
    const [fx, fy] = this.minimapScale;
    this.panX = (event.clientX - box.left) / fx - g.gridWidth / 2;
    this.panY = (event.clientY - box.top) / fy - g.height / 2;
    this.requestView();
    event.preventDefault();
  }

  paintBars(ctx = this.bars.getContext("2d")) {
    // \`ctx\`: this canvas, or an SvgContext for the SVG export.
    const g = this.geometry;
    const height = parseFloat(this.bars.style.height);
    ctx.clearRect(0, 0, g.width, height);
    const name = this.payload.names[this.head];
    if (this.sel === null) {
      this.barsTitle.textContent = "Select a token (click a row) to see its attention as bars.";
      return;
    }
    const label = this.rows[this.sel];
    // Bars are lengths on a labelled axis: 0 to the largest of the two halves (linear), so a
    // row of small weights is still readable; the axis says how small.
    const out = [];
    const incoming = [];
    let top = 0;
    for (let c = 0; c < this.nCols; c += 1) {
      out.push(this.cell(this.head, this.sel, c));
      if (!this.oneWay) incoming.push(this.barIn(c));
    }
    for (const v of [...out, ...incoming]) if (Number.isFinite(v) && Math.abs(v) > top) top = Math.abs(v);
    top = top > 0 ? top : 1;
    this.barsTitle.textContent =
      (this.cross
        ? `'${label}' (target): the attention it pays to each source token (blue).`
        : this.long
          ? `'${label}' (token ${this.sel}): the attention it pays to each token (blue), exact.`
          : `'${label}': the attention it pays to each token (blue, up) and the attention each ` +
          `token pays to it (orange, down).`) +
      ` Bars: linear, 0–${formatValue(top)}` +
      (this.payload.signed ? "; a negative value is a vermillion bar of its magnitude." : ".");
    const base = BAR_PX;
    const axis = () => {
      ctx.strokeStyle = this.grid;
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(Math.max(g.gutter, this.x(0)), base + 0.5);
      ctx.lineTo(Math.min(g.gutter + g.gridWidth, this.x(this.nCols)), base + 0.5);
      ctx.stroke();
      ctx.fillStyle = this.text;
      ctx.font = `10px ${this.font}`;
      ctx.textAlign = "right";
      ctx.textBaseline = "top";
      ctx.fillText(formatValue(top), g.gutter - 4, 0);
      ctx.textBaseline = "middle";
      ctx.fillText("0", g.gutter - 4, base);
      if (!this.oneWay) {
        ctx.textBaseline = "bottom";
        ctx.fillText(formatValue(top), g.gutter - 4, 2 * BAR_PX);
      }
    };
    const width = Math.max(1, g.colPitch - (g.colPitch > 3 ? 1 : 0));
    ctx.save();
    ctx.beginPath();
    ctx.rect(g.gutter, 0, g.gridWidth, height);
    ctx.clip();
    const outColour = this.dark ? OUT_COLOUR_DARK : OUT_COLOUR;
    this.barSeries(ctx, out, top, (h) => [base - h, h], outColour, width);
    if (!this.oneWay) this.barSeries(ctx, incoming, top, (h) => [base + 1, h], IN_COLOUR, width);
    ctx.restore();
    axis();
    const labelsTop = this.oneWay ? BAR_PX + 4 : 2 * BAR_PX + 4;
    this.columnLabels(ctx, labelsTop, g.headerHeight, false);
    this.bars.setAttribute(
      "aria-label",
      `Bars of '${label}', head ${name}: attention paid to each token` +
        (this.oneWay ? "" : " and received from each token"),
    );
  }

  barSeries(ctx, values, top, span, colour, width) {
    // One half of the bars for the columns in view. A cell never computed is a hatched stub
    // on the axis, not a zero (consecutive ones as one stub). Columns thinner than a pixel
    // share it: the pixel shows their largest magnitude (its sign's colour), so a long row
    // costs a rectangle a pixel, not one a token.
    const g = this.geometry;
    const stub = span(8);
    const runs = [];
    let start = -1;
    const pixel = g.colPitch < 1;
    let last = null; // [x, height, value] of the pixel being merged
    const flush = () => {
      if (!last) return;
      ctx.fillStyle = last[2] < 0 ? NEGATIVE_COLOUR : colour;
      const [y, h] = span(last[1]);
      ctx.fillRect(last[0], y, width, h);
      last = null;
    };
    for (let c = g.c0; c <= g.c1; c += 1) {
      const v = c < g.c1 ? values[c] : 0;
      const empty = c < g.c1 && !Number.isFinite(v);
      if (empty && start < 0) start = c;
      if (!empty && start >= 0) {
        runs.push([start, c]);
        start = -1;
      }
      if (c === g.c1 || empty) continue;
      const h = Math.min(1, Math.abs(v) / top) * (BAR_PX - 2);
      const x = pixel ? Math.floor(this.x(c)) : this.x(c);
      if (last && last[0] === x) {
        if (h > last[1]) last = [x, h, v];
        continue;
      }
      flush();
      last = [x, h, v];
    }
    flush();
    ctx.fillStyle = this.hatch(ctx);
    for (const [a, b] of runs) {
      ctx.fillRect(this.x(a), stub[0], (b - a - 1) * g.colPitch + width, stub[1]);
    }
  }

  /** What token `c` pays the selected token (the orange bars). */
  barIn(c) {
    return this.cell(this.head, c, this.sel);
  }

  paintLegend() {
    const ctx = this.legendCanvas.getContext("2d");
    const w = parseFloat(this.legendCanvas.style.width);
    ctx.clearRect(0, 0, w, 34);
    for (let x = 0; x < w; x += 1) {
      const i = 3 * Math.round((x / (w - 1)) * 255);
      ctx.fillStyle = `rgb(${this.lut[i]},${this.lut[i + 1]},${this.lut[i + 2]})`;
      ctx.fillRect(x, 0, 1, 14);
    }
    ctx.fillStyle = this.text;
    ctx.font = `11px ${this.font}`;
    ctx.textBaseline = "top";
    const signed = this.payload.signed;
    const low = signed ? `−${formatValue(this.top)}` : this.options.log ? `≤${formatValue(this.top / 10 ** LOG_DECADES)}` : "0";
    ctx.textAlign = "left";
    ctx.fillText(low, 0, 17);
    ctx.textAlign = "right";
    ctx.fillText(formatValue(this.top), w, 17);
    if (signed) {
      ctx.textAlign = "center";
      ctx.fillText("0", w / 2, 17);
    } else if (this.options.log) {
      // The decades between, left to right, each only where it clears its neighbours' text
      // (a narrow legend at 1024 px has room for the ends only).
      ctx.textAlign = "center";
      let clear = ctx.measureText(low).width + 6;
      const end = w - ctx.measureText(formatValue(this.top)).width - 6;
      for (let d = LOG_DECADES - 1; d >= 1; d -= 1) {
        const label = formatValue(this.top / 10 ** d);
        const x = w * (1 - d / LOG_DECADES);
        const half = ctx.measureText(label).width / 2;
        if (x - half < clear || x + half > end) continue;
        ctx.fillText(label, x, 17);
        clear = x + half + 6;
      }
    }
    const parts = [
      `${this.payload.what}, ${signed ? "±" : "0–"}${formatValue(this.top)}: ${SCALE_NAMES[this.options.scale]}`,
    ];
    if (this.options.scale !== "chart" && this.chartTop > this.top * 1.0001)
      parts.push(`values above ${formatValue(this.top)} drawn at the top`);
    if (this.options.log) parts.push(`log scale (${LOG_DECADES} decades)`);
    if (this.options.dropFirst)
      parts.push(`without the first token '${this.cols[0]}' (each row renormalised over the rest)`);
    parts.push(`colours: ${signed ? "blue–red, diverging" : PALETTE_NAMES[this.options.palette]}`);
    parts.push("hatched: never computed");
    if (this.payload.segB !== null)
      parts.push("the rule splits sentence A (blue strip, left) from sentence B (orange strip)");
    this.legendText.textContent = parts.join(" · ");
    this.legendCanvas.setAttribute("aria-label", `Colour legend: ${parts[0]}`);
    this.root.dataset.legend = this.legendText.textContent;
  }

  describe() {
    // The text alternative: the selected row's strongest weights (and column's, if square).
    const p = this.payload;
    const name = p.names[this.head];
    // A panel beside a model with fewer heads shows only the heads both have (meanOf: all).
    const heads = p.meanOf || p.names.length - 1;
    const what = name === "mean" ? `mean of ${heads} heads` : p.names.length > 1 ? `head ${name}` : "";
    this.titleLine.textContent = `${p.title}${what ? `, ${what}` : ""}`;
    this.matrix.setAttribute(
      "aria-label",
      `Attention matrix, ${p.title}, ${what || "one matrix"}: ${this.nRows} rows × ${this.nCols} columns`,
    );
    if (this.sel === null) {
      this.summary.textContent = "No token selected.";
      return;
    }
    const strongest = (values, labels) =>
      values
        .map((v, i) => [v, i])
        .filter(([v]) => Number.isFinite(v))
        .sort((a, b) => Math.abs(b[0]) - Math.abs(a[0]))
        .slice(0, 5)
        .map(([v, i]) => `${labels[i]} ${formatValue(v)}`)
        .join(", ");
    const out = [];
    const incoming = [];
    for (let c = 0; c < this.nCols; c += 1) out.push(this.cell(this.head, this.sel, c));
    if (!this.oneWay) for (let r = 0; r < this.nRows; r += 1) incoming.push(this.cell(this.head, r, this.sel));
    let text = `Selected '${this.rows[this.sel]}' (row ${this.sel}) attends most to: ${strongest(out, this.cols) || "nothing computed"}.`;
    if (!this.oneWay) text += ` Attended most by: ${strongest(incoming, this.rows) || "nothing computed"}.`;
    this.summary.textContent = text;
  }

  // ------------------------------------------------------------------ interaction
  cellAt(event, where) {
    const g = this.geometry;
    const canvas = where === "matrix" ? this.matrix : this.bars;
    const box = canvas.getBoundingClientRect();
    const x = event.clientX - box.left - g.gutter;
    const y = event.clientY - box.top;
    if (x < 0 && where === "matrix" && y >= 0) {
      const row = Math.floor((y + this.panY) / g.rowPitch);
      return row >= 0 && row < this.nRows ? { row, col: null } : null;
    }
    if (x < 0 || x > g.gridWidth) return null;
    const col = Math.floor((x + this.panX) / g.colPitch);
    if (col < 0 || col >= this.nCols) return null;
    if (where === "bars") return this.sel === null ? null : { col, below: y > BAR_PX };
    if (y < 0 || y > g.height) return null;
    const row = Math.floor((y + this.panY) / g.rowPitch);
    return row >= 0 && row < this.nRows ? { row, col } : null;
  }

  onPointerDown(event) {
    if (event.button !== 0) return;
    this.drag = { x: event.clientX, y: event.clientY, panX: this.panX, panY: this.panY, moved: false };
    try {
      this.body.setPointerCapture(event.pointerId); // the drag goes on outside the matrix
    } catch {
      // a synthetic pointer (tests, benches) cannot be captured
    }
  }

  onDrag(event) {
    const d = this.drag;
    const dx = event.clientX - d.x;
    const dy = event.clientY - d.y;
    if (!d.moved && Math.hypot(dx, dy) < 4) return; // a click, so far
    d.moved = true;
    this.body.style.cursor = "grabbing";
    this.panX = d.panX - dx;
    this.panY = d.panY - dy;
    this.hover = null;
    this.tip.style.display = "none";
    this.requestView();
  }

  onPointerUp(event) {
    const d = this.drag;
    this.drag = null;
    this.body.style.cursor = "";
    if (!d || d.moved) return;
    const cell = this.cellAt(event, "matrix");
    if (cell) this.select(cell.row);
  }

  onWheel(event) {
    const g = this.geometry;
    const scale = event.deltaMode === 1 ? 16 : event.deltaMode === 2 ? g.height : 1;
    if (event.ctrlKey || event.metaKey) {
      const box = this.matrix.getBoundingClientRect();
      const ax = Math.max(0, Math.min(g.gridWidth, event.clientX - box.left - g.gutter));
      this.zoomBy(Math.exp(-event.deltaY * scale * 0.0025), ax, event.clientY - box.top);
      event.preventDefault();
      return;
    }
    const dx = (event.shiftKey ? event.deltaY : event.deltaX) * scale;
    const dy = (event.shiftKey ? 0 : event.deltaY) * scale;
    // At an edge the wheel is the page's again.
    if (this.panBy(dx, dy)) event.preventDefault();
  }

  onPointer(event, where) {
    const cell = this.cellAt(event, where);
    if (!cell || cell.col === null) {
      this.setHover(null);
      return;
    }
    if (where === "bars") {
      const below = cell.below && !this.oneWay;
      const row = below ? cell.col : this.sel;
      const col = below ? this.sel : cell.col;
      this.setHover({ where, row, col }, event);
    } else {
      this.setHover({ where, row: cell.row, col: cell.col }, event);
    }
  }

  /** The hovered value: float16 for a matrix the server sent exactly, else its 8-bit value
   * with the half step it is known to (the exact one follows the next run). */
  valueText(row, col) {
    const v = this.cell(this.head, row, col);
    if (this.long) {
      if (Number.isFinite(v) || this.tileAt(row, col)) return formatValue(v);
      const b = this.block(row, col);
      return (
        `${formatValue(b.value)}, ${this.long.reduce} of block ${b.rows[0]}–${b.rows[1]} × ` +
        `${b.cols[0]}–${b.cols[1]} (zoom in for exact weights)`
      );
    }
    if (this.exactHeads.has(this.head) || !Number.isFinite(v)) return formatValue(v);
    const scale = this.store.scales[this.head * this.nRows + row];
    let half = scale / (this.payload.signed ? STEPS : 2 * STEPS);
    if (this.options.dropFirst) half /= this.rowRest[row];
    return `≈${formatValue(v)} ± ${formatValue(half)} (8-bit)`;
  }

  setHover(hover, event) {
    if (this.waiting !== null) return; // no values to show yet
    this.hover = hover;
    if (!hover) {
      this.tip.style.display = "none";
      this.root.dataset.hover = "";
      this.paintOverlay();
      return;
    }
    const text = `${this.rows[hover.row]} → ${this.cols[hover.col]}: ${this.valueText(hover.row, hover.col)}`;
    this.tip.textContent = text;
    this.tip.style.display = "block";
    const box = this.root.getBoundingClientRect();
    const x = event.clientX - box.left + 14;
    this.tip.style.left = `${Math.min(x, box.width - 200)}px`;
    this.tip.style.top = `${event.clientY - box.top + 14}px`;
    this.root.dataset.hover = text;
    this.paintOverlay();
  }

  select(row) {
    if (row === null || row < 0 || row >= this.nRows) return;
    this.sel = row;
    this.repaint(false);
    this.reveal();
    this.schedule();
  }

  setHead(index) {
    if (index < 0 || index >= this.count) return;
    if (this.long) {
      // A long input holds one head: the server sends the other's overview.
      this.sendNow({ head: this.headName(index) });
      return;
    }
    this.head = index;
    this.buildHeads();
    this.repaint(false);
    this.schedule();
  }

  reveal() {
    // Keeps the selected row (and its column, in a square matrix) in view.
    const g = this.geometry;
    const top = this.sel * g.rowPitch;
    if (top < this.panY) this.panY = top;
    else if (top + g.rowPitch > this.panY + g.height) this.panY = top + g.rowPitch - g.height;
    if (!this.cross) {
      const left = this.sel * g.colPitch;
      if (left < this.panX) this.panX = left;
      else if (left + g.colPitch > this.panX + g.gridWidth)
        this.panX = left + g.colPitch - g.gridWidth;
    }
    this.paintView();
  }

  schedule() {
    // The page's line view (ui/head_view) follows at once, in the browser.
    const name = this.payload.names[this.head];
    window.dispatchEvent(
      new CustomEvent(EXPLORER_EVENT, {
        detail: { token: this.sel, head: name === "mean" ? "mean" : Number(name) },
      }),
    );
    // Python hears of the new head and token once the keys rest: one run, not one per key.
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.root.dataset.sentAt = String(performance.now());
      this.sent = { head: this.head, sel: this.sel };
      const name = this.payload.names[this.head];
      this.setTriggerValue("view", {
        head: name === "mean" ? "mean" : Number(name),
        token: this.sel,
      });
    }, VIEW_DELAY_MS);
  }

  headName(index) {
    const name = this.payload.names[index];
    return name === "mean" ? "mean" : Number(name);
  }

  sendNow(change) {
    // A change the browser cannot show by itself (a layer; a long input's head): at once.
    clearTimeout(this.timer);
    this.root.dataset.sentAt = String(performance.now());
    this.sent = { head: this.head, sel: this.sel };
    this.setTriggerValue("view", { head: this.headName(this.head), token: this.sel, ...change });
  }

  onKey(event) {
    if (event.target.closest("select, input, button") && event.key !== "?") return;
    const key = event.key;
    let handled = true;
    const last = this.nRows - 1;
    const sel = this.sel === null ? -1 : this.sel;
    const g = this.geometry;
    const pans = {
      ArrowLeft: [-PAN_FRACTION * g.gridWidth, 0],
      ArrowRight: [PAN_FRACTION * g.gridWidth, 0],
      ArrowUp: [0, -PAN_FRACTION * g.height],
      ArrowDown: [0, PAN_FRACTION * g.height],
    };
    if (event.shiftKey && pans[key]) this.panBy(...pans[key]);
    else if (key === "+" || key === "=") this.zoomOnSelection(ZOOM_STEP);
    else if (key === "-" || key === "_") this.zoomOnSelection(1 / ZOOM_STEP);
    else if (key === "0") {
      this.zoom = 1;
      this.frame(false);
      this.requestView();
    } else if (key === "ArrowDown" || key === "ArrowRight") this.select(Math.min(last, sel + 1));
    else if (key === "ArrowUp" || key === "ArrowLeft") this.select(Math.max(0, sel - 1));
    else if (key === "Home") this.select(0);
    else if (key === "End") this.select(last);
    else if (key === "]") this.setHead((this.head + 1) % this.count);
    else if (key === "[") this.setHead((this.head - 1 + this.count) % this.count);
    else if (key === "PageUp" || key === "PageDown") {
      const layer = this.payload.layer + (key === "PageDown" ? 1 : -1);
      if (layer >= 0 && layer < this.payload.layers) {
        clearTimeout(this.timer);
        const name = this.payload.names[this.head];
        this.root.dataset.sentAt = String(performance.now());
        this.sent = { head: this.head, sel: this.sel };
        this.setTriggerValue("view", {
          layer,
          head: name === "mean" ? "mean" : Number(name),
          token: this.sel,
        });
      }
    } else if (key === "?") this.toggleHelp();
    else if (key === "Escape") this.toggleHelp(false);
    else handled = false;
    if (handled) {
      event.preventDefault();
      event.stopPropagation();
    }
  }

  exportPng() {
    if (this.waiting !== null) return;
    // Exactly what is shown: title, legend, the whole matrix with its labels, the bars.
    const g = this.geometry;
    const ratio = window.devicePixelRatio || 1;
    const titleHeight = 44;
    const barsHeight = parseFloat(this.bars.style.height);
    const height = titleHeight + g.headerHeight + g.height + 8 + barsHeight;
    const canvas = document.createElement("canvas");
    canvas.width = Math.round(g.width * ratio);
    canvas.height = Math.round(height * ratio);
    const ctx = canvas.getContext("2d");
    ctx.scale(ratio, ratio);
    ctx.fillStyle = `rgb(${this.background.join(",")})`;
    ctx.fillRect(0, 0, g.width, height);
    this.paintHeading(ctx);
    let y = titleHeight;
    for (const [source, h] of [
      [this.colCanvas, g.headerHeight],
      [this.matrix, g.height],
      [this.overlay, g.height],
    ]) {
      ctx.drawImage(source, 0, y, g.width, h);
      if (source !== this.matrix) y += h;
    }
    ctx.drawImage(this.bars, 0, y + 8, g.width, barsHeight);
    canvas.toBlob((blob) => {
      if (blob) this.download(blob, "png");
    }, "image/png");
  }

  paintHeading(ctx) {
    // An export's first two lines: the title and the legend's text.
    ctx.fillStyle = this.text;
    ctx.font = `bold 13px ${this.font}`;
    ctx.textBaseline = "top";
    ctx.fillText(this.titleLine.textContent, 4, 2);
    ctx.font = `11px ${this.font}`;
    ctx.fillText(this.clip(ctx, this.legendText.textContent, this.geometry.width - 8), 4, 20);
  }

  exportSvg() {
    if (this.waiting !== null) return;
    // Exactly what is shown, drawn by the same painters into an SVG: labels, bars, outlines
    // and rules as vector text and shapes, the cells as an embedded image of one pixel a cell
    // (a long input's blocks and exact tiles likewise).
    const g = this.geometry;
    const titleHeight = 44;
    const barsHeight = parseFloat(this.bars.style.height);
    const height = titleHeight + g.headerHeight + g.height + 8 + barsHeight;
    const svg = new SvgContext(g.width, height, this.colCanvas.getContext("2d"), {
      background: `rgb(${this.background.join(",")})`,
      hatch: this.dark ? "rgba(255,255,255,0.28)" : "rgba(0,0,0,0.22)",
    });
    this.paintSvg(svg, titleHeight);
    this.download(new Blob([svg.text()], { type: "image/svg+xml" }), "svg");
  }

  /** What is shown, into `svg` by the painters: the heading (`headingHeight` px), the column
   * labels, the matrix and its overlay, the bars. */
  paintSvg(svg, headingHeight) {
    const g = this.geometry;
    this.paintHeading(svg);
    svg.translate(0, headingHeight);
    this.paintColumns(svg);
    svg.translate(0, g.headerHeight);
    this.paintMatrix(svg);
    svg.layer = true;
    this.paintOverlay(svg);
    svg.layer = false;
    svg.translate(0, g.height + 8);
    this.paintBars(svg);
  }

  download(blob, extension) {
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    const title = this.payload.title.replace(/[^\w-]+/g, "_").slice(0, 60);
    link.download = `attention_${title}_head_${this.payload.names[this.head]}.${extension}`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
    this.root.dataset.exported = String(blob.size);
    this.root.dataset.exportedType = extension;
  }

  destroy() {
    window.removeEventListener("resize", this.onWindowResize);
    window.removeEventListener(HEADS_EVENT, this.onHeads);
    clearTimeout(this.waitTimer);
    clearTimeout(this.timer);
    this.resizeObserver.disconnect();
  }
}

export default function explorer(component) {
  const { data, parentElement, setTriggerValue } = component;
  const arrived = performance.now();
  const payload = typeof data === "string" ? JSON.parse(data) : unpack(data);
  if (!window.__atlasExplorerHeadsListener) {
    // Once per page: the hidden element's codes (readHeadsMessage).
    window.__atlasExplorerHeadsListener = true;
    window.addEventListener(HEADS_MESSAGE_EVENT, () => readHeadsMessage());
  }
  // Compare mode (payload.compare): a group of linked explorers in its own root.
  const kind = payload.compare ? "ex-compare" : "ex-root";
  let root = parentElement.querySelector(`.${kind}`);
  if (!root) {
    root = document.createElement("div");
    root.className = kind;
    parentElement.append(root);
  }
  // One explorer per mounted component: a rerun updates it in place, so the legend's options,
  // the scroll position and a selection made since the last run survive.
  if (!root.__explorer)
    root.__explorer = payload.compare ? new CompareGroup(root, setTriggerValue) : new Explorer(root, setTriggerValue);
  const view = root.__explorer;
  view.setTriggerValue = setTriggerValue;
  view.update(payload);
  // For the benches: when this run's message reached the component, and how long it took
  // to read it and repaint.
  root.dataset.arrivedAt = String(arrived);
  root.dataset.updateMs = (performance.now() - arrived).toFixed(1);
  return () => {
    if (!root.isConnected) view.destroy();
  };
}

// ====================================================================== compare
// Compare mode (payload.compare, ui/explorer/payload.py build_compare_payload): several
// matrices of one text (Before, After, Difference; or two models) drawn as panels side by side
// (stacked where the column is narrow) sharing one view. Each panel is a full Explorer with
// its own data store, legend and scale; zoom, pan, hover, the selected row, the head and the
// legend's options move all of them. Rows map between panels through link units: panel A's
// row r is panel B's row B.unitRow[A.rowUnit[r]] (word units of the replacement, or the
// characters two tokenizers share).

const COMPARE_MIN_PANEL_PX = 300; // narrower panels stack instead of standing side by side
const COMPARE_GAP_PX = 16;

class LinkedExplorer extends Explorer {
  constructor(root, group, index) {
    super(root, (name, value) => group.trigger(name, value));
    this.group = group;
    this.index = index;
    this.dataStore = group.dataStore(index);
    root.classList.add("ex-linked");
    if (index === 0) root.classList.add("ex-lead");
  }

  adopt(payload) {
    super.adopt(payload);
    // Without the first token is applied by the server to every panel (the difference is of
    // the transformed matrices): the sidebar sets it.
    this.dropBox.checked = Boolean(payload.notes && payload.notes.some((n) => n.startsWith("without the first token")));
    this.dropBox.disabled = true;
    this.dropBox.parentElement.title = "Set in the sidebar: the difference is computed on the server";
  }

  /** Row of this panel that `leader`'s row `row` maps to (-1: none). */
  mapRow(leader, row) {
    if (leader === this) return row;
    const unit = leader.payload.rowUnit[row];
    if (unit === undefined || unit < 0) return -1;
    const mapped = this.payload.unitRow[unit];
    return mapped === undefined ? -1 : mapped;
  }

  /** Fractional position `p` of `leader`'s rows (or columns) in this panel's. */
  mapPosition(leader, p) {
    const n = leader.nRows;
    const row = Math.max(0, Math.min(n - 1, Math.floor(p)));
    const mapped = this.mapRow(leader, row);
    if (mapped < 0) return (p / n) * this.nRows;
    return Math.min(this.nRows, mapped + (p - row));
  }

  /** Shows what `leader` shows: the same first row and column and the same span of columns. */
  alignView(leader) {
    const g = leader.geometry;
    const mine = this.geometry;
    if (!g || !mine) return;
    const x0 = this.mapPosition(leader, leader.panX / g.colPitch);
    const x1 = this.mapPosition(leader, (leader.panX + g.gridWidth) / g.colPitch);
    const y0 = this.mapPosition(leader, leader.panY / g.rowPitch);
    const span = Math.max(1e-6, x1 - x0);
    this.zoom = leader.zoom === 1 ? 1 : mine.gridWidth / span / mine.colPitch0;
    this.zoom = Math.max(1, Math.min(this.maxZoom(), this.zoom));
    this.panX = x0 * mine.colPitch0 * this.zoom;
    this.panY = y0 * mine.rowPitch0 * this.zoom;
  }

  paintView() {
    super.paintView();
    if (!this.group.syncing) this.group.followView(this);
  }

  setHover(hover, event) {
    super.setHover(hover, event);
    if (!this.group.syncing) this.group.followHover(this, hover);
  }

  select(row) {
    super.select(row);
    if (!this.group.syncing) this.group.followSelection(this);
  }

  setHead(index) {
    super.setHead(index);
    if (!this.group.syncing) this.group.followHead(this);
  }

  paintLegend() {
    super.paintLegend();
    const p = this.payload;
    let text = this.legendText.textContent;
    const renamed = (p.scaleNames || {})[this.options.scale];
    if (renamed) text = text.replace(SCALE_NAMES[this.options.scale], renamed);
    if (p.notes && p.notes.length) text += ` · ${p.notes.join(" · ")}`;
    this.legendText.textContent = text;
    this.root.dataset.legend = text;
  }

  paintBars(ctx) {
    super.paintBars(ctx);
    // No row selected: no empty bars' box under every panel (the title says how to get them).
    this.bars.style.display = this.sel === null ? "none" : "";
    if (this.payload.signed && this.sel !== null) {
      // The difference's bars are changes of attention, not attention.
      this.barsTitle.textContent = this.barsTitle.textContent
        .replace("the attention it pays", "the change (after − before) of the attention it pays")
        .replace("the attention each token pays", "of the attention each token pays");
    }
  }

  exportPng() {
    this.group.exportPng();
  }

  exportSvg() {
    this.group.exportSvg();
  }

  /** The legend's text in lines that fit the panel's width (an export shows all of it). */
  legendLines(ctx) {
    ctx.font = `11px ${this.font}`;
    const room = this.geometry.width - 8;
    const lines = [];
    let line = "";
    for (const word of this.legendText.textContent.split(" ")) {
      const longer = line ? `${line} ${word}` : word;
      if (line && ctx.measureText(longer).width > room) {
        lines.push(line);
        line = word;
      } else line = longer;
    }
    if (line) lines.push(line);
    return lines;
  }

  headingHeight() {
    return 26 + 14 * this.legendLines(this.colCanvas.getContext("2d")).length;
  }

  paintHeading(ctx) {
    // An export's heading: the title, then the whole legend text, wrapped.
    ctx.fillStyle = this.text;
    ctx.font = `bold 13px ${this.font}`;
    ctx.textBaseline = "top";
    ctx.fillText(this.clip(ctx, this.titleLine.textContent, this.geometry.width - 8), 4, 2);
    this.legendLines(ctx).forEach((line, i) => {
      ctx.font = `11px ${this.font}`;
      ctx.fillText(line, 4, 20 + 14 * i);
    });
  }

  /** Height of this panel in an export: title and legend, column labels, matrix, bars. */
  exportHeight() {
    const g = this.geometry;
    return this.headingHeight() + g.headerHeight + g.height + 8 + this.exportBarsHeight();
  }

  exportBarsHeight() {
    return this.sel === null ? 0 : parseFloat(this.bars.style.height);
  }
}

class CompareGroup {
  constructor(root, setTriggerValue) {
    this.root = root;
    this.setTriggerValue = setTriggerValue;
    this.panels = [];
    this.syncing = false;
    root.setAttribute("role", "group");
    this.caption = el("div", "ex-compare-caption");
    this.grid = el("div", "ex-compare-grid");
    root.append(this.caption, this.grid);
    this.resizeObserver = new ResizeObserver(() => this.arrange());
    this.resizeObserver.observe(root);
  }

  /** Panel `index`'s data store, kept on the window by the explorer's key: Streamlit mounts
   * the component anew when an element above it comes or goes (a spinner of the first run),
   * and the new one keeps the matrices instead of asking for them again. */
  dataStore(index) {
    const all = window.__atlasCompareData || (window.__atlasCompareData = {});
    const stores = all[this.key] || (all[this.key] = []);
    return stores[index] || (stores[index] = { key: null });
  }

  /** The view (zoom, pan, selected rows, the lead's options) kept for a component mounted
   * anew, like the data. */
  saveView() {
    const views = window.__atlasCompareViews || (window.__atlasCompareViews = {});
    views[this.key] = {
      shapes: this.panels.map((p) => (p.payload ? p.payload.shape.join("x") : "")).join(","),
      panels: this.panels.map((p) => ({ zoom: p.zoom, panX: p.panX, panY: p.panY, sel: p.sel })),
      options: { ...this.panels[0].options },
    };
  }

  restoreView() {
    const saved = (window.__atlasCompareViews || {})[this.key];
    const shapes = this.panels.map((p) => (p.payload ? p.payload.shape.join("x") : "")).join(",");
    if (!saved || saved.shapes !== shapes) return;
    this.synced(() => {
      this.panels.forEach((panel, index) => {
        Object.assign(panel, saved.panels[index]);
        if (index === 0) {
          Object.assign(panel.options, saved.options);
          panel.scaleBox.value = panel.options.scale;
          panel.paletteBox.value = panel.options.palette;
          panel.logBox.checked = panel.options.log;
        }
        panel.repaint(false);
      });
    });
  }

  trigger(name, value) {
    // One panel's view change speaks for all: the others follow in the browser.
    if (name === "view" && !value.need) {
      for (const panel of this.panels) panel.sent = { head: panel.head, sel: panel.sel };
    }
    this.setTriggerValue(name, value);
  }

  update(payload) {
    const panels = payload.panels.map((panel, index) => {
      const own = { ...panel };
      for (const [name, value] of Object.entries(panel)) {
        if (value === "$blob") own[name] = payload[`${index}:${name}`];
      }
      return own;
    });
    const meta = payload.compare;
    const mounted = this.panels.length > 0;
    this.key = meta.key;
    this.caption.textContent = meta.caption;
    this.root.setAttribute("aria-label", `Compare: ${panels.map((p) => p.title).join("; ")}`);
    if (this.panels.length !== panels.length) {
      this.grid.textContent = "";
      this.panels = panels.map((_, index) => {
        const panelRoot = el("div", "ex-root");
        this.grid.append(panelRoot);
        return new LinkedExplorer(panelRoot, this, index);
      });
      // The lead panel's head chips and legend options (scale, colours, log) are every
      // panel's: its bar and help stand above the panels.
      const lead = this.panels[0];
      lead.controls.addEventListener("change", () => this.followOptions(lead));
      this.root.insertBefore(lead.bar, this.grid);
      this.root.append(lead.help);
      this.arrange();
    }
    this.root.dataset.link = meta.link;
    this.syncing = true;
    try {
      panels.forEach((panel, index) => this.panels[index].update(panel));
    } finally {
      this.syncing = false;
    }
    if (!mounted) this.restoreView();
    this.followOptions(this.panels[0]);
    this.followView(this.panels[0]);
    this.alignTops();
  }

  alignTops() {
    // Panels side by side start their matrices at one height: a shorter title, legend and
    // column labels get the room longer ones take (under the legend).
    const header = (panel) => (panel.geometry ? panel.geometry.headerHeight : 0);
    this.headers = this.panels.map(header).join(",");
    const heads = this.panels.map((panel) => {
      panel.legendBox.style.minHeight = "";
      return panel.titleLine.offsetHeight + header(panel);
    });
    const rows = new Map();
    this.panels.forEach((panel, index) => {
      const top = panel.root.offsetTop;
      const height = heads[index] + panel.legendBox.offsetHeight;
      rows.set(top, Math.max(rows.get(top) || 0, height));
    });
    this.panels.forEach((panel, index) => {
      const room = rows.get(panel.root.offsetTop) - heads[index];
      if (room > panel.legendBox.offsetHeight) panel.legendBox.style.minHeight = `${room}px`;
    });
  }

  arrange() {
    // As many panels side by side as COMPARE_MIN_PANEL_PX allows; a last panel alone in its
    // row (the difference below before and after) takes the whole width.
    const width = this.root.clientWidth;
    const n = this.panels.length;
    if (!n || !width) return;
    requestAnimationFrame(() => this.alignTops()); // the legends' text wraps anew
    const columns = Math.max(1, Math.min(n, Math.floor((width + COMPARE_GAP_PX) / (COMPARE_MIN_PANEL_PX + COMPARE_GAP_PX))));
    if (columns === this.columns) return;
    this.columns = columns;
    this.grid.style.gridTemplateColumns = `repeat(${columns}, minmax(0, 1fr))`;
    this.panels.forEach((panel, index) => {
      const alone = index === n - 1 && n % columns === 1 && columns > 1;
      panel.root.style.gridColumn = alone ? "1 / -1" : "";
    });
    this.root.dataset.columns = String(columns);
  }

  others(leader) {
    return this.panels.filter((panel) => panel !== leader && panel.payload && panel.geometry);
  }

  synced(f) {
    this.syncing = true;
    try {
      f();
    } finally {
      this.syncing = false;
    }
  }

  followView(leader) {
    if (!leader.geometry) return;
    this.synced(() => {
      for (const panel of this.others(leader)) {
        panel.alignView(leader);
        panel.paintView();
      }
    });
    // Zooming grows the column labels' band: the panels' tops align again when it did.
    if (this.panels.map((p) => (p.geometry ? p.geometry.headerHeight : 0)).join(",") !== this.headers)
      this.alignTops();
    this.saveView();
    const d = this.root.dataset;
    d.zooms = this.panels.map((p) => p.zoom.toFixed(2)).join(",");
    d.views = this.panels.map((p) => p.root.dataset.view || "").join(",");
  }

  followHover(leader, hover) {
    const lines = [];
    const cells = [];
    this.synced(() => {
      for (const panel of this.panels) {
        if (!panel.payload) continue;
        let cell = null;
        if (hover) {
          const row = panel.mapRow(leader, hover.row);
          const col = panel.mapRow(leader, hover.col);
          if (row >= 0 && col >= 0) cell = { row, col };
        }
        cells.push(cell ? [cell.row, cell.col] : null);
        if (panel === leader) {
          if (cell) lines.push(`${panel.payload.title}: ${panel.rows[cell.row]} → ${panel.cols[cell.col]}: ${panel.valueText(cell.row, cell.col)}`);
          continue;
        }
        panel.hover = cell ? { where: "matrix", row: cell.row, col: cell.col } : null;
        panel.root.dataset.hover = cell
          ? `${panel.rows[cell.row]} → ${panel.cols[cell.col]}: ${panel.valueText(cell.row, cell.col)}`
          : "";
        panel.paintOverlay();
        if (cell) lines.push(`${panel.payload.title}: ${panel.rows[cell.row]} → ${panel.cols[cell.col]}: ${panel.valueText(cell.row, cell.col)}`);
        else if (hover) lines.push(`${panel.payload.title}: no counterpart`);
      }
    });
    if (hover && lines.length) leader.tip.textContent = lines.join("\n");
    this.root.dataset.hover = JSON.stringify(cells);
  }

  followSelection(leader) {
    this.synced(() => {
      for (const panel of this.others(leader)) {
        const row = leader.sel === null ? null : panel.mapRow(leader, leader.sel);
        panel.sel = row === null || row < 0 ? null : row;
        panel.paintView();
        panel.describe();
        panel.root.dataset.selected = panel.sel === null ? "" : String(panel.sel);
      }
    });
    this.saveView();
  }

  followHead(leader) {
    this.synced(() => {
      for (const panel of this.others(leader)) {
        if (leader.head >= panel.count) continue;
        panel.head = leader.head;
        panel.buildHeads();
        panel.repaint(false);
      }
    });
    this.followView(leader);
    this.alignTops();
  }

  followOptions(leader) {
    // Scale and colours for all; log only where it applies (never a signed difference).
    this.synced(() => {
      for (const panel of this.others(leader)) {
        const options = { scale: leader.options.scale, palette: leader.options.palette };
        if (options.scale === "shared" && panel.payload.shared === null) options.scale = "chart";
        if (!panel.payload.signed) options.log = leader.options.log;
        const changed = Object.entries(options).some(([name, value]) => panel.options[name] !== value);
        if (!changed) continue;
        Object.assign(panel.options, options);
        panel.scaleBox.value = panel.options.scale;
        panel.logBox.checked = panel.options.log;
        panel.repaint(false);
      }
    });
  }

  /** Where each panel goes in an export: the grid as laid out (x, y), and the size. */
  exportLayout() {
    const origin = this.grid.getBoundingClientRect();
    const placed = this.panels.map((panel) => {
      const box = panel.root.getBoundingClientRect();
      return { panel, x: Math.round(box.left - origin.left), top: Math.round(box.top - origin.top) };
    });
    // Panels of one grid row start at one height: the row is as tall as its tallest export.
    const rows = [...new Set(placed.map((p) => p.top))].sort((a, b) => a - b);
    let y = 0;
    for (const top of rows) {
      const inRow = placed.filter((p) => p.top === top);
      for (const p of inRow) p.y = y;
      y += Math.max(...inRow.map((p) => p.panel.exportHeight())) + 12;
    }
    return { placed, width: Math.round(origin.width), height: y };
  }

  exportPng() {
    const { placed, width, height } = this.exportLayout();
    const lead = this.panels[0];
    const ratio = window.devicePixelRatio || 1;
    const canvas = document.createElement("canvas");
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    const ctx = canvas.getContext("2d");
    ctx.scale(ratio, ratio);
    ctx.fillStyle = `rgb(${lead.background.join(",")})`;
    ctx.fillRect(0, 0, width, height);
    for (const { panel, x, y } of placed) {
      const g = panel.geometry;
      const top = panel.headingHeight();
      ctx.save();
      ctx.translate(x, y);
      panel.paintHeading(ctx);
      // Column labels, then the matrix with its overlay on top, then the bars.
      const layers = [
        [panel.colCanvas, top, g.headerHeight],
        [panel.matrix, top + g.headerHeight, g.height],
        [panel.overlay, top + g.headerHeight, g.height],
        [panel.bars, top + g.headerHeight + g.height + 8, panel.exportBarsHeight()],
      ];
      for (const [source, at, h] of layers) if (h > 0) ctx.drawImage(source, 0, at, g.width, h);
      ctx.restore();
    }
    canvas.toBlob((blob) => {
      if (blob) this.download(blob, "png");
    }, "image/png");
  }

  exportSvg() {
    const { placed, width, height } = this.exportLayout();
    const lead = this.panels[0];
    const svg = new SvgContext(width, height, lead.colCanvas.getContext("2d"), {
      background: `rgb(${lead.background.join(",")})`,
      hatch: lead.dark ? "rgba(255,255,255,0.28)" : "rgba(0,0,0,0.22)",
    });
    for (const { panel, x, y } of placed) {
      svg.save();
      svg.translate(x, y);
      panel.paintSvg(svg, panel.headingHeight());
      svg.restore();
    }
    this.download(new Blob([svg.text()], { type: "image/svg+xml" }), "svg");
  }

  download(blob, extension) {
    // The explorer's download, named for the comparison and marked on the group's root.
    const lead = this.panels[0];
    const named = { payload: { title: "compare", names: lead.payload.names }, head: lead.head, root: this.root };
    Explorer.prototype.download.call(named, blob, extension);
  }

  destroy() {
    this.resizeObserver.disconnect();
    for (const panel of this.panels) panel.destroy();
  }
}
