// Head view: one layer's attention as lines between two token columns, drawn on a canvas.
//
// Everything but a click on a token stays in the browser: hover, legend toggles and head
// isolation redraw locally and send nothing to the server. A click sends the token index as
// the trigger value "select" (a second click on the selected token sends null).
//
// The payload (ui/head_view/payload.py) holds every head of the layer, lines already pruned
// to the strongest per token, weights as integers in 1/ws units.

const MIN_ALPHA = 8; // lines under 8/256 opacity are not drawn: invisible, yet as costly
const EXPLORER_EVENT = "atlas-explorer"; // sent on window by ui/explorer/explorer.js
const SMOOTH_LINES = 400; // up to this many hover lines are stroked (antialiased) by the canvas

function rowMetrics(count) {
  // Rows shrink with the token count so 512 tokens stay a scrollable, not endless, page.
  if (count <= 40) return { row: 22, font: 13 };
  if (count <= 160) return { row: 18, font: 12 };
  return { row: 14, font: 10.5 };
}

function parseColour(ctx, colour, fallback) {
  ctx.fillStyle = fallback;
  ctx.fillStyle = colour || fallback; // an invalid colour leaves the fallback in place
  const value = ctx.fillStyle;
  if (value.startsWith("#")) {
    const n = parseInt(value.slice(1), 16);
    return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
  }
  const match = value.match(/[\d.]+/g) || [255, 255, 255];
  return match.slice(0, 3).map(Number);
}

function strongestFirst(lines) {
  // (head, edge, alpha) triples reordered by alpha, strongest first: a counting sort on 64
  // levels, linear in the number of lines.
  const levels = 64;
  const counts = new Int32Array(levels + 1);
  const level = (alpha) => levels - 1 - Math.min(levels - 1, Math.floor(alpha * levels));
  for (let j = 0; j < lines.length; j += 3) counts[level(lines[j + 2]) + 1] += 1;
  for (let l = 0; l < levels; l += 1) counts[l + 1] += counts[l];
  const ordered = new Array(lines.length);
  for (let j = 0; j < lines.length; j += 3) {
    const at = 3 * counts[level(lines[j + 2])]++;
    ordered[at] = lines[j];
    ordered[at + 1] = lines[j + 1];
    ordered[at + 2] = lines[j + 2];
  }
  return ordered;
}

function headColours(count, dark) {
  // Evenly spaced hues; from 9 heads on, neighbours also alternate in lightness, so 12+ heads
  // stay distinguishable. Lighter tones on a dark background, darker on a light one.
  const colours = [];
  for (let h = 0; h < count; h += 1) {
    const hue = Math.round((h * 360) / count + 8) % 360;
    const alternate = count > 8 && h % 2 === 1;
    const light = dark ? (alternate ? 74 : 60) : alternate ? 30 : 45;
    colours.push(`hsl(${hue}, 80%, ${light}%)`);
  }
  return colours;
}

class Edges {
  // One head's lines as typed arrays, sorted by weight (so the strongest are drawn on top),
  // with per-query and per-key indexes for hover.
  constructor(flat, scale, nLeft, nRight) {
    const count = flat.length / 3;
    const order = new Int32Array(count);
    for (let i = 0; i < count; i += 1) order[i] = i;
    order.sort((a, b) => flat[3 * a + 2] - flat[3 * b + 2]);
    this.q = new Int32Array(count);
    this.k = new Int32Array(count);
    this.w = new Float32Array(count);
    for (let i = 0; i < count; i += 1) {
      const j = order[i];
      this.q[i] = flat[3 * j];
      this.k[i] = flat[3 * j + 1];
      this.w[i] = flat[3 * j + 2] / scale;
    }
    this.count = count;
    [this.byQStart, this.byQ] = Edges.index(this.q, nLeft);
    [this.byKStart, this.byK] = Edges.index(this.k, nRight);
  }

  static index(keys, n) {
    const start = new Int32Array(n + 1);
    for (let i = 0; i < keys.length; i += 1) start[keys[i] + 1] += 1;
    for (let i = 0; i < n; i += 1) start[i + 1] += start[i];
    const fill = start.slice(0, n);
    const items = new Int32Array(keys.length);
    for (let i = 0; i < keys.length; i += 1) items[fill[keys[i]]++] = i;
    return [start, items];
  }
}

/** `value`, or null for a missing one (JSON.stringify would drop undefined array items). */
function orNull(value) {
  return value === undefined ? null : value;
}

class HeadView {
  constructor(root, setTriggerValue) {
    this.root = root;
    this.setTriggerValue = setTriggerValue;
    this.payload = null;
    this.visible = null;
    this.hover = null;
    this.sel = null;
    this.draws = 0;
    this.frame = 0;
    this.width = 0;
    this.build();
    this.resizeObserver = new ResizeObserver(() => {
      const width = this.root.clientWidth;
      if (width > 0 && width !== this.width) {
        this.layout();
        this.draw();
      }
    });
    this.resizeObserver.observe(root);
    // The page's explorer (ui/explorer) announces its selected token and head as they change
    // in the browser: the lines follow at once, before the page's run catches up.
    this.onExplorer = (event) => this.followExplorer(event.detail || {});
    window.addEventListener(EXPLORER_EVENT, this.onExplorer);
  }

  followExplorer({ token, head }) {
    if (!this.payload) return;
    this.followed = (this.followed || 0) + 1;
    this.root.dataset.followed = String(this.followed);
    if (Number.isInteger(token) && token >= 0 && token < this.left.length) {
      this.sel = { side: "left", index: token };
    }
    // One head of the explorer isolates it here; its mean shows every head again.
    if (this.payload.heads > 1 && (head === "mean" || Number.isInteger(head))) {
      const all = this.chips.map((_, h) => h);
      this.visible = new Set(head === "mean" || head >= this.payload.heads ? all : [head]);
      this.syncChips();
      this.updateNote();
    }
    this.scheduleDraw();
  }

  build() {
    const root = this.root;
    root.textContent = "";
    this.legend = document.createElement("div");
    this.legend.className = "hv-legend";
    this.legend.setAttribute("role", "group");
    this.legend.setAttribute("aria-label", "Heads shown");
    this.note = document.createElement("div");
    this.note.className = "hv-note";
    this.scroll = document.createElement("div");
    this.scroll.className = "hv-scroll";
    this.body = document.createElement("div");
    this.body.className = "hv-body";
    this.canvas = document.createElement("canvas");
    this.canvas.className = "hv-canvas";
    this.leftCol = document.createElement("div");
    this.leftCol.className = "hv-col hv-left";
    this.rightCol = document.createElement("div");
    this.rightCol.className = "hv-col hv-right";
    this.bands = document.createElement("div");
    this.body.append(this.canvas, this.bands, this.leftCol, this.rightCol);
    this.scroll.append(this.body);
    root.append(this.legend, this.note, this.scroll);

    this.legend.addEventListener("click", (event) => this.onLegendClick(event));
    this.legend.addEventListener("dblclick", (event) => {
      const chip = event.target.closest(".hv-chip");
      if (chip) this.isolate(Number(chip.dataset.head));
    });
    for (const [col, side] of [
      [this.leftCol, "left"],
      [this.rightCol, "right"],
    ]) {
      col.addEventListener("pointerover", (event) => {
        const token = event.target.closest(".hv-token");
        if (token) this.setHover({ side, index: Number(token.dataset.index) });
      });
      col.addEventListener("click", (event) => {
        const token = event.target.closest(".hv-token");
        if (token) this.onTokenClick(side, Number(token.dataset.index));
      });
    }
    this.body.addEventListener("pointerleave", () => this.setHover(null));
    // Escape shows every line again, as a second click on the selected token does.
    root.tabIndex = 0;
    root.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && this.sel !== null) {
        event.preventDefault();
        this.onTokenClick(this.sel.side, this.sel.index);
      }
    });
    this.scroll.addEventListener("scroll", () => {
      const drawn = this.drawnBand;
      if (!drawn) return;
      const top = this.scroll.scrollTop;
      if (top < drawn.top || top + this.scroll.clientHeight > drawn.bottom) this.scheduleDraw();
    });
  }

  band() {
    // The rows worth rasterising, in CSS px: a long input scrolls in a box of `maxHeight`, and
    // only what is in view, with a screenful of margin either side, is drawn (redrawn when a
    // scroll leaves it). At 512 tokens that is ~1,900 of the ~7,200 px of rows.
    const height = this.geometry.height;
    const view = this.scroll.clientHeight;
    if (!this.payload.maxHeight || view <= 0 || view >= height) return { top: 0, bottom: height };
    const top = this.scroll.scrollTop;
    return { top: Math.max(0, top - view), bottom: Math.min(height, top + 2 * view) };
  }

  update(payload) {
    const previous = this.payload;
    const sameShape =
      previous &&
      previous.heads === payload.heads &&
      previous.left.length === payload.left.length &&
      (previous.right || previous.left).length === (payload.right || payload.left).length;
    this.payload = payload;
    this.left = payload.left;
    this.right = payload.right || payload.left;
    this.cross = payload.right !== null && payload.right !== undefined;
    const shownChanged =
      !previous || JSON.stringify(previous.shown) !== JSON.stringify(payload.shown);
    if (!sameShape || shownChanged) this.visible = new Set(payload.shown);
    if (!sameShape) this.hover = null;
    if (!sameShape || previous.sel !== payload.sel) {
      // Python is the source of truth for the selection whenever it changes it.
      // A selection made here by a click keeps the side it was clicked on.
      const keep = this.sel !== null && payload.sel === this.sel.index && sameShape;
      if (!keep) this.sel = payload.sel === null ? null : { side: "left", index: payload.sel };
    }
    this.edges = payload.edges.map(
      (flat) => new Edges(flat, payload.ws, this.left.length, this.right.length),
    );
    this.readTheme();
    this.buildLegend();
    // A change of layer, head or method keeps the tokens: their elements (2 × 512 at most)
    // are only rebuilt, and restyled, when the tokens change.
    const tokens = JSON.stringify([
      orNull(payload.left),
      orNull(payload.right),
      orNull(payload.pieces),
      orNull(payload.rpieces),
      orNull(payload.segB),
    ]);
    if (tokens !== this.tokenKey) {
      this.tokenKey = tokens;
      this.rowStyle = null;
      this.buildTokens();
    } else {
      this.updateNote();
    }
    this.layout();
    this.draw();
  }

  readTheme() {
    const style = getComputedStyle(this.root);
    const probe = this.canvas.getContext("2d");
    const background = parseColour(
      probe,
      style.getPropertyValue("--st-background-color").trim(),
      "#ffffff",
    );
    const luminance = (0.2126 * background[0] + 0.7152 * background[1] + 0.0722 * background[2]) / 255;
    this.dark = luminance < 0.5;
    this.background = background;
    this.colours = headColours(this.payload.heads, this.dark);
    this.rgb = this.colours.map((colour) => parseColour(probe, colour, "#808080"));
    this.root.dataset.theme = this.dark ? "dark" : "light";
  }

  buildLegend() {
    const legend = this.legend;
    legend.textContent = "";
    legend.hidden = Boolean(this.payload.single); // a method without heads: nothing to toggle
    this.chips = [];
    if (this.payload.single) return;
    const title = document.createElement("span");
    title.className = "hv-legend-title";
    title.textContent = "Heads";
    legend.append(title);
    for (const [action, label, tip] of [
      ["all", "all", "Show every head"],
      ["none", "none", "Hide every head"],
    ]) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "hv-action";
      button.dataset.action = action;
      button.textContent = label;
      button.title = tip;
      legend.append(button);
    }
    this.chips = [];
    for (let h = 0; h < this.payload.heads; h += 1) {
      const chip = document.createElement("button");
      chip.type = "button";
      chip.className = "hv-chip";
      chip.dataset.head = String(h);
      chip.textContent = String(h);
      chip.title = `Head ${h}: click to show or hide, double-click (or Alt-click) to show it alone`;
      chip.style.setProperty("--hv-chip-colour", this.colours[h]);
      chip.style.setProperty("--hv-chip-text", this.chipText(this.colours[h]));
      legend.append(chip);
      this.chips.push(chip);
    }
    this.syncChips();
  }

  chipText(colour) {
    // Black or white, whichever reads better on the head's colour.
    const [r, g, b] = parseColour(this.canvas.getContext("2d"), colour, "#808080");
    const luminance = (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
    return luminance > 0.55 ? "#111" : "#fff";
  }

  syncChips() {
    this.chips.forEach((chip, h) => chip.setAttribute("aria-pressed", String(this.visible.has(h))));
    this.root.dataset.visibleHeads = [...this.visible].sort((a, b) => a - b).join(",");
  }

  onLegendClick(event) {
    const action = event.target.closest(".hv-action");
    if (action) {
      const all = action.dataset.action === "all";
      this.visible = new Set(all ? this.chips.map((_, h) => h) : []);
      this.afterHeadsChanged();
      return;
    }
    const chip = event.target.closest(".hv-chip");
    if (!chip) return;
    const head = Number(chip.dataset.head);
    if (event.altKey || event.shiftKey) {
      this.isolate(head);
      return;
    }
    if (this.visible.has(head)) this.visible.delete(head);
    else this.visible.add(head);
    this.afterHeadsChanged();
  }

  isolate(head) {
    // Isolating the head that is already alone brings every head back, as in BertViz.
    const alone = this.visible.size === 1 && this.visible.has(head);
    this.visible = new Set(alone ? this.chips.map((_, h) => h) : [head]);
    this.afterHeadsChanged();
  }

  afterHeadsChanged() {
    this.syncChips();
    this.updateNote();
    this.scheduleDraw();
  }

  tokenLabel(text, isPiece) {
    const fragment = document.createDocumentFragment();
    if (isPiece) {
      const joiner = document.createElement("span");
      joiner.className = "hv-joiner";
      joiner.textContent = this.payload.marker; // core.tokens.PIECE_MARKER, as on every view
      fragment.append(joiner);
    }
    fragment.append(document.createTextNode(text));
    return fragment;
  }

  buildTokens() {
    const p = this.payload;
    const pieces = { left: p.pieces, right: this.cross ? p.rpieces : p.pieces };
    const segB = p.segB;
    for (const [col, tokens, side] of [
      [this.leftCol, this.left, "left"],
      [this.rightCol, this.right, "right"],
    ]) {
      col.textContent = "";
      const marks = pieces[side];
      const fragment = document.createDocumentFragment();
      tokens.forEach((text, index) => {
        const token = document.createElement("div");
        token.className = "hv-token";
        token.dataset.index = String(index);
        const isPiece = Boolean(marks && marks[index]);
        token.append(this.tokenLabel(text, isPiece));
        let tip = `${index}: ${text}`;
        if (isPiece) tip += " (continues the previous word)";
        if (segB !== null && (side === "left" || !this.cross)) {
          tip += index < segB ? " · sentence A" : " · sentence B";
        }
        token.title = tip;
        if (this.cross && side === "right") token.classList.add("hv-inert");
        fragment.append(token);
      });
      col.append(fragment);
    }
    this.updateNote();
  }

  updateNote() {
    const p = this.payload;
    const shown = this.visible.size;
    let heads = shown === p.heads ? `all ${p.heads} heads` : `${shown} of ${p.heads} heads`;
    if (p.single) heads = p.single;
    const sides = this.cross
      ? "Left: target tokens (queries), right: source tokens (keys). "
      : "";
    const how = this.cross
      ? "Hover a token for its lines; click a target token to select it."
      : "Hover a token for its lines; click to select it, click again to clear.";
    this.note.textContent = `${sides}${p.note} Showing ${heads}. ${how}`;
  }

  layout() {
    const width = Math.max(this.root.clientWidth, 120);
    this.width = this.root.clientWidth;
    const rows = Math.max(this.left.length, this.right.length);
    const { row, font } = rowMetrics(rows);
    const banded = this.payload.segB !== null;
    const band = banded ? 16 : 0;
    const labelWidth = Math.round(Math.min(170, Math.max(48, width * 0.26)));
    const height = rows * row + 2;
    this.geometry = {
      row,
      font,
      band,
      labelWidth,
      width,
      height,
      leftX: 0,
      rightX: width - labelWidth,
      leftBandX: labelWidth + 1,
      rightBandX: width - labelWidth - band - 1,
      lineX1: labelWidth + band + 4,
      lineX2: width - labelWidth - band - 4,
    };
    const g = this.geometry;
    this.body.style.height = `${height}px`;
    const maxHeight = this.payload.maxHeight;
    this.scroll.style.maxHeight = maxHeight ? `${maxHeight}px` : "";
    const restyle = this.rowStyle !== row;
    this.rowStyle = row;
    for (const [col, x] of [
      [this.leftCol, g.leftX],
      [this.rightCol, g.rightX],
    ]) {
      col.style.left = `${x}px`;
      col.style.width = `${g.labelWidth}px`;
      col.style.fontSize = `${font}px`;
      if (!restyle) continue;
      for (const token of col.children) {
        token.style.height = `${row}px`;
        token.style.lineHeight = `${row}px`;
      }
    }
    this.layoutBands();
    const ratio = window.devicePixelRatio || 1;
    this.canvas.width = Math.round(width * ratio);
    this.canvas.height = Math.round(height * ratio);
    this.canvas.style.width = `${width}px`;
    this.canvas.style.height = `${height}px`;
  }

  layoutBands() {
    const g = this.geometry;
    const segB = this.payload.segB;
    this.bands.textContent = "";
    if (segB === null) return;
    const sides = [[g.leftBandX, this.left.length]];
    if (!this.cross) sides.push([g.rightBandX, this.right.length]);
    for (const [x, count] of sides) {
      for (const [label, from, to] of [
        ["A", 0, segB],
        ["B", segB, count],
      ]) {
        if (to <= from) continue;
        const band = document.createElement("div");
        band.className = `hv-band hv-band-${label.toLowerCase()}`;
        band.textContent = label;
        band.title = `Sentence ${label}: tokens ${from}–${to - 1}`;
        band.style.left = `${x}px`;
        band.style.top = `${from * g.row + 1}px`;
        band.style.height = `${(to - from) * g.row - 2}px`;
        band.style.lineHeight = `${g.row}px`;
        this.bands.append(band);
      }
    }
  }

  setHover(hover) {
    const same =
      (hover === null && this.hover === null) ||
      (hover && this.hover && hover.side === this.hover.side && hover.index === this.hover.index);
    if (same) return;
    this.hover = hover;
    this.scheduleDraw();
  }

  onTokenClick(side, index) {
    if (this.cross && side === "right") return; // the selection is a target (query) token
    const clear = this.sel !== null && this.sel.index === index;
    this.sel = clear ? null : { side, index };
    this.scheduleDraw();
    this.setTriggerValue("select", { token: clear ? null : index });
  }

  scheduleDraw() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.draw();
    });
  }

  laneOffset(head) {
    // Each head draws in its own thin lane of the row, so lines of different heads sit side by
    // side instead of piling up into one muddy colour.
    const g = this.geometry;
    const heads = this.payload.heads;
    if (heads < 2) return 0;
    const gap = Math.min(2, (g.row * 0.6) / (heads - 1));
    return (head - (heads - 1) / 2) * gap;
  }

  markTokens(focus) {
    for (const col of [this.leftCol, this.rightCol]) {
      for (const token of col.querySelectorAll(".hv-hover, .hv-selected")) {
        token.classList.remove("hv-hover", "hv-selected");
      }
    }
    const colOf = (side) => (side === "left" ? this.leftCol : this.rightCol);
    if (this.sel) colOf(this.sel.side).children[this.sel.index]?.classList.add("hv-selected");
    if (focus && focus === this.hover) colOf(focus.side).children[focus.index]?.classList.add("hv-hover");
  }

  raster(ctx, lines, thickness, progressive, after) {
    // Canvas 2D strokes cost ~0.1-0.5 microseconds per pixel in Chromium's software
    // rasteriser: tens of thousands of long lines take seconds. The lines are written into an
    // ImageData buffer instead (one pixel per step along the longer axis, blended in integers
    // over the theme's background, which the buffer starts as), then put once per frame.
    // `lines` is flat (head, edge, alpha) triples. `progressive`: draw the strongest lines
    // first, ~30 ms per frame, so a large overview appears at once and fills in over the next
    // frames (data-complete says when). `after` runs after every put (what is drawn over the
    // lines). Returns how many lines will be drawn.
    const width = this.canvas.width;
    const height = this.canvas.height;
    if (!this.image || this.image.width !== width || this.image.height !== height) {
      this.image = ctx.createImageData(width, height);
      this.words = new Uint32Array(this.image.data.buffer);
    }
    const [r, g, b] = this.background;
    const little = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
    const band = this.band();
    this.drawnBand = band;
    const ratio = width / this.geometry.width;
    const top = Math.max(0, Math.floor(band.top * ratio));
    const bottom = Math.min(height, Math.ceil(band.bottom * ratio));
    const background = little
      ? (255 << 24) | (b << 16) | (g << 8) | r
      : (r << 24) | (g << 16) | (b << 8) | 255;
    this.words.fill(background, top * width, bottom * width);
    const ordered = progressive ? strongestFirst(lines) : lines;
    const job = { lines: ordered, next: 0, thickness, top, bottom };
    this.job = job;
    const step = () => {
      if (this.job !== job) return; // a newer drawing replaced this one
      const until = progressive ? performance.now() + 30 : Infinity;
      job.next = this.rasterLines(job, until);
      ctx.putImageData(this.image, 0, 0, 0, top, width, bottom - top);
      if (after) after();
      if (job.next < job.lines.length) {
        this.jobFrame = requestAnimationFrame(step);
      } else {
        this.jobFrame = 0;
        this.root.dataset.complete = String(this.draws + (this.drawing ? 1 : 0));
      }
    };
    step();
    return ordered.length / 3;
  }

  rasterLines(job, until) {
    const g = this.geometry;
    const width = this.canvas.width;
    const ratio = width / g.width;
    const data = this.image.data;
    const lines = job.lines;
    const x0 = g.lineX1 * ratio;
    const dx = (g.lineX2 - g.lineX1) * ratio;
    const rowStride = width * 4;
    const { top, bottom } = job;
    let j = job.next;
    for (; j < lines.length; j += 3) {
      if ((j & 255) === 0 && performance.now() > until) break;
      const alpha = Math.round(lines[j + 2] * 256);
      if (alpha < MIN_ALPHA) continue;
      const h = lines[j];
      const e = this.edges[h];
      const i = lines[j + 1];
      const lane = this.laneOffset(h);
      const colour = this.rgb[h];
      const pr = colour[0] * alpha;
      const pg = colour[1] * alpha;
      const pb = colour[2] * alpha;
      const y0 = (e.q[i] * g.row + g.row / 2 + lane) * ratio;
      const dy = (e.k[i] * g.row + g.row / 2 + lane) * ratio - y0;
      const steps = Math.max(1, Math.ceil(Math.max(Math.abs(dx), Math.abs(dy))));
      const sx = dx / steps;
      const sy = dy / steps;
      // Only the steps whose pixel row is inside the band [top, bottom).
      let first = 0;
      let last = steps;
      if (sy > 0) {
        first = Math.max(0, Math.ceil((top - y0) / sy));
        last = Math.min(steps, Math.floor((bottom - 1 - y0) / sy));
      } else if (sy < 0) {
        first = Math.max(0, Math.ceil((bottom - 1 - y0) / sy));
        last = Math.min(steps, Math.floor((top - y0) / sy));
      } else if (y0 < top || y0 >= bottom) {
        continue;
      }
      // The second pixel of a thick line sits across the line's direction.
      const across = Math.abs(dy) > Math.abs(dx) ? 4 : rowStride;
      let x = x0 + sx * first;
      let y = y0 + sy * first;
      for (let s = first; s <= last; s += 1) {
        let p = ((y | 0) * width + (x | 0)) << 2;
        for (let t = 0; t < job.thickness; t += 1, p += across) {
          data[p] += (pr - data[p] * alpha) >> 8;
          data[p + 1] += (pg - data[p + 1] * alpha) >> 8;
          data[p + 2] += (pb - data[p + 2] * alpha) >> 8;
        }
        x += sx;
        y += sy;
      }
    }
    return j;
  }

  stopRaster() {
    this.job = null;
    if (this.jobFrame) cancelAnimationFrame(this.jobFrame);
    this.jobFrame = 0;
  }

  draw() {
    if (!this.payload || !this.geometry) return;
    this.stopRaster();
    this.drawing = true;
    const g = this.geometry;
    const ctx = this.canvas.getContext("2d");
    const ratio = window.devicePixelRatio || 1;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, g.width, g.height);
    const focus = this.hover || this.sel;
    const heads = [...this.visible].sort((a, b) => a - b);
    const scaleMax = this.payload.max;
    const yOf = (index) => index * g.row + g.row / 2;
    let drawn = 0;
    if (focus === null) {
      // Overview: every shipped line of every shown head. Opacity is scaled down as more heads
      // overlap (2/sqrt(heads), at most 1).
      const damp = Math.min(1, 2 / Math.sqrt(Math.max(1, heads.length)));
      const lines = [];
      for (const h of heads) {
        const e = this.edges[h];
        for (let i = 0; i < e.count; i += 1) {
          const alpha = Math.min(1, e.w[i] / scaleMax) * damp;
          if (Math.round(alpha * 256) >= MIN_ALPHA) lines.push(h, i, alpha);
        }
      }
      drawn = this.raster(ctx, lines, 1, true);
    } else {
      const fromLeft = focus.side === "left";
      const stripWidth = g.labelWidth / Math.max(1, heads.length);
      const stripX = fromLeft ? g.rightX : g.leftX;
      const lines = [];
      for (const h of heads) {
        const e = this.edges[h];
        const start = fromLeft ? e.byQStart : e.byKStart;
        const items = fromLeft ? e.byQ : e.byK;
        for (let j = start[focus.index]; j < start[focus.index + 1]; j += 1) {
          lines.push(h, items[j], Math.min(1, e.w[items[j]] / scaleMax));
        }
      }
      // BertViz-style strips behind the other side's tokens, one slot per shown head, lighter
      // than the lines so the labels stay readable.
      const rank = new Map(heads.map((h, r) => [h, r]));
      const strips = () => {
        for (let j = 0; j < lines.length; j += 3) {
          const h = lines[j];
          const e = this.edges[h];
          const i = lines[j + 1];
          const other = fromLeft ? e.k[i] : e.q[i];
          ctx.fillStyle = this.colours[h];
          ctx.globalAlpha = lines[j + 2] * 0.6;
          ctx.fillRect(stripX + rank.get(h) * stripWidth, other * g.row + 1, stripWidth, g.row - 2);
        }
        ctx.globalAlpha = 1;
      };
      if (lines.length / 3 > SMOOTH_LINES) {
        // Hovering a token many others attend to (e.g. [CLS] at 512 tokens): thousands of
        // lines, drawn like the overview.
        drawn = this.raster(ctx, lines, 2, true, strips);
      } else {
        ctx.lineWidth = 2;
        for (let j = 0; j < lines.length; j += 3) {
          const h = lines[j];
          const e = this.edges[h];
          const i = lines[j + 1];
          const lane = this.laneOffset(h);
          ctx.strokeStyle = this.colours[h];
          ctx.globalAlpha = lines[j + 2];
          ctx.beginPath();
          ctx.moveTo(g.lineX1, yOf(e.q[i]) + lane);
          ctx.lineTo(g.lineX2, yOf(e.k[i]) + lane);
          ctx.stroke();
          drawn += 1;
        }
        strips();
      }
    }
    ctx.globalAlpha = 1;
    this.markTokens(focus);
    this.draws += 1;
    const root = this.root;
    root.dataset.draws = String(this.draws);
    root.dataset.lines = String(drawn);
    root.dataset.focus = focus ? `${focus.side}:${focus.index}` : "";
    root.dataset.selected = this.sel ? String(this.sel.index) : "";
    if (!this.job) root.dataset.complete = String(this.draws);
    this.drawing = false;
  }

  destroy() {
    window.removeEventListener(EXPLORER_EVENT, this.onExplorer);
    this.stopRaster();
    this.resizeObserver.disconnect();
    if (this.frame) cancelAnimationFrame(this.frame);
  }
}

export default function headView(component) {
  const { data, parentElement, setTriggerValue } = component;
  const payload = typeof data === "string" ? JSON.parse(data) : data;
  let root = parentElement.querySelector(".hv-root");
  if (!root) {
    root = document.createElement("div");
    root.className = "hv-root";
    parentElement.append(root);
  }
  // One view per mounted component: a rerun with new data updates it in place, so the heads
  // toggled in the legend and the hover survive a layer change.
  if (!root.__headView) root.__headView = new HeadView(root, setTriggerValue);
  const view = root.__headView;
  view.setTriggerValue = setTriggerValue;
  view.update(payload);
  return () => {
    // Streamlit may call this for a superseded render; only a removed view is torn down.
    if (!root.isConnected) view.destroy();
  };
}
