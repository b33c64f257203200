// Head grid: every head's thumbnail on one canvas as wide as its column.
//
// The payload (ui/head_grid/payload.py) holds the thumbnails already coloured, as one PNG atlas
// (layer l, head h is the block at rows l*rows, columns h*cols); this script only scales the
// blocks up pixel for pixel, draws the axes, the legend and a measure's bars, and sends
// {layer, head} as the trigger "open" on a click, Enter or Space.

const MAX_TILE_PX = 180; // a model with few heads gets large thumbnails, not giant ones
const FONT_PX = 12;
const HEAD_AXIS_PX = 34; // "head" and the head numbers above the thumbnails
const LEGEND_PX = 46; // the colour legends below
const LEGEND_BAR_PX = 150;

class HeadGrid {
  constructor(root, setTriggerValue) {
    this.root = root;
    this.setTriggerValue = setTriggerValue;
    root.tabIndex = 0;
    root.setAttribute("role", "group");
    this.canvas = document.createElement("canvas");
    this.canvas.className = "hg-canvas";
    this.canvas.setAttribute("role", "img");
    this.tip = document.createElement("div");
    this.tip.className = "hg-tip";
    this.tip.hidden = true;
    this.caption = document.createElement("div");
    this.caption.className = "hg-caption";
    this.alt = document.createElement("div");
    this.alt.className = "hg-alt";
    root.append(this.canvas, this.tip, this.caption, this.alt);
    this.hover = null; // [layer, head] under the pointer
    this.cursor = null; // [layer, head] moved by the keyboard
    this.image = null;
    this.imageSource = null;
    this.canvas.addEventListener("mousemove", (e) => this.onMove(e));
    this.canvas.addEventListener("mouseleave", () => this.setHover(null));
    this.canvas.addEventListener("click", (e) => {
      const hit = this.hit(e);
      if (hit) this.open(hit);
    });
    root.addEventListener("keydown", (e) => this.onKey(e));
    root.addEventListener("blur", () => {
      this.cursor = null;
      this.draw();
    });
    this.resizeObserver = new ResizeObserver(() => this.layoutAndDraw());
    this.resizeObserver.observe(root);
  }

  update(payload) {
    this.payload = payload;
    const { layers, heads } = payload;
    this.root.setAttribute("aria-label", `Head grid: ${layers} layers × ${heads} heads. Arrow keys move, Enter opens a head on the Attention page.`);
    this.canvas.setAttribute("aria-label", `Attention of every head, ${layers} layers × ${heads} heads`);
    this.caption.textContent = payload.caption || "";
    this.caption.hidden = !payload.caption;
    this.alt.textContent = this.textAlternative();
    if (payload.image !== this.imageSource) {
      this.imageSource = payload.image;
      const image = new Image();
      image.onload = () => {
        if (this.imageSource !== payload.image) return;
        this.image = image;
        this.layoutAndDraw();
      };
      image.src = payload.image;
    }
    this.layoutAndDraw();
  }

  textAlternative() {
    const p = this.payload;
    const parts = [`${p.layers} layers, ${p.heads} heads.`];
    if (p.selected) parts.push(`Selected: layer ${p.selected[0]}, head ${p.selected[1]}.`);
    if (p.measure) {
      const ranked = p.measure.values
        .map((v, i) => [v, i])
        .filter(([v]) => v !== null)
        .sort((a, b) => b[0] - a[0])
        .slice(0, 5)
        .map(([v, i]) => `layer ${Math.floor(i / p.heads)} head ${i % p.heads}: ${v}`);
      parts.push(`Highest ${p.measure.name}: ${ranked.join("; ")}.`);
    }
    return parts.join(" ");
  }

  readTheme() {
    const style = getComputedStyle(this.root);
    this.text = style.color || "#31333f";
    this.font = style.fontFamily || "sans-serif";
    this.primary = style.getPropertyValue("--st-primary-color").trim() || "#ff4b4b";
    this.faint = style.getPropertyValue("--st-border-color").trim() || "rgba(128,128,128,0.25)";
  }

  layoutAndDraw() {
    if (!this.payload) return;
    const p = this.payload;
    const width = Math.max(120, this.root.clientWidth);
    const ctx = this.canvas.getContext("2d");
    ctx.font = `${FONT_PX}px ${this.font || "sans-serif"}`;
    const layerLabel = ctx.measureText(String(p.layers - 1)).width;
    this.left = Math.ceil(FONT_PX + 8 + layerLabel + 6); // "layer" (rotated) and the numbers
    this.tile = Math.max(4, Math.min(MAX_TILE_PX, Math.floor((width - this.left) / p.heads)));
    this.gap = Math.max(1, Math.round(this.tile * 0.08));
    this.side = this.tile - this.gap;
    this.barHeight = p.measure ? Math.max(3, Math.round(this.side * 0.07)) : 0;
    this.rowHeight = this.tile + (p.measure ? this.barHeight + 2 : 0);
    this.top = HEAD_AXIS_PX;
    this.gridHeight = p.layers * this.rowHeight;
    this.width = width;
    this.height = this.top + this.gridHeight + LEGEND_PX;
    const ratio = window.devicePixelRatio || 1;
    this.canvas.width = Math.round(width * ratio);
    this.canvas.height = Math.round(this.height * ratio);
    this.canvas.style.width = `${width}px`;
    this.canvas.style.height = `${this.height}px`;
    this.ratio = ratio;
    this.draw();
  }

  origin(layer, head) {
    return [this.left + head * this.tile, this.top + layer * this.rowHeight];
  }

  draw() {
    if (!this.payload || !this.tile) return;
    this.readTheme();
    const p = this.payload;
    const ctx = this.canvas.getContext("2d");
    ctx.setTransform(this.ratio, 0, 0, this.ratio, 0, 0);
    ctx.clearRect(0, 0, this.width, this.height);
    ctx.font = `${FONT_PX}px ${this.font}`;
    ctx.fillStyle = this.text;
    this.drawAxes(ctx);
    ctx.imageSmoothingEnabled = false; // whole cells, not a blur, at any size
    for (let layer = 0; layer < p.layers; layer += 1) {
      for (let head = 0; head < p.heads; head += 1) this.drawTile(ctx, layer, head);
    }
    const mark = (cell, colour, width, dash) => {
      if (!cell) return;
      const [x, y] = this.origin(cell[0], cell[1]);
      ctx.save();
      ctx.strokeStyle = colour;
      ctx.lineWidth = width;
      ctx.setLineDash(dash);
      ctx.strokeRect(x - 1, y - 1, this.side + 2, this.side + 2 + (p.measure ? this.barHeight + 2 : 0));
      ctx.restore();
    };
    mark(p.selected, this.primary, 2.5, []);
    mark(this.hover, this.text, 1.5, []);
    mark(this.cursor, this.text, 1.5, [3, 2]);
    this.drawLegends(ctx);
  }

  drawAxes(ctx) {
    const p = this.payload;
    ctx.textAlign = "center";
    ctx.textBaseline = "alphabetic";
    ctx.fillText("head", this.left + (p.heads * this.tile) / 2, FONT_PX);
    // Every head number that fits, else every second, third…
    const every = Math.ceil((ctx.measureText(String(p.heads - 1)).width + 6) / this.tile);
    for (let head = 0; head < p.heads; head += every) {
      ctx.fillText(String(head), this.left + head * this.tile + this.side / 2, this.top - 5);
    }
    const rowsEvery = Math.ceil((FONT_PX + 2) / this.rowHeight);
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (let layer = 0; layer < p.layers; layer += rowsEvery) {
      ctx.fillText(String(layer), this.left - 5, this.top + layer * this.rowHeight + this.side / 2);
    }
    ctx.save();
    ctx.translate(FONT_PX - 2, this.top + this.gridHeight / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "center";
    ctx.fillText("layer", 0, 0);
    ctx.restore();
  }

  drawTile(ctx, layer, head) {
    const p = this.payload;
    const [x, y] = this.origin(layer, head);
    ctx.fillStyle = this.faint; // the square stays visible where the cells are empty
    ctx.globalAlpha = 0.35;
    ctx.fillRect(x, y, this.side, this.side);
    ctx.globalAlpha = 1;
    if (this.image) {
      ctx.drawImage(this.image, head * p.cols, layer * p.rows, p.cols, p.rows, x, y, this.side, this.side);
    }
    if (!p.measure) return;
    const i = layer * p.heads + head;
    const barY = y + this.side + 2;
    ctx.fillStyle = this.faint;
    ctx.globalAlpha = 0.35;
    ctx.fillRect(x, barY, this.side, this.barHeight);
    ctx.globalAlpha = 1;
    if (p.measure.shares[i] !== null) {
      ctx.fillStyle = p.measure.colours[i];
      ctx.fillRect(x, barY, Math.max(1, p.measure.shares[i] * this.side), this.barHeight);
    }
  }

  drawLegend(ctx, x, title, stops, low, high, threshold) {
    const y = this.top + this.gridHeight + 8;
    ctx.fillStyle = this.text;
    ctx.textAlign = "left";
    ctx.textBaseline = "top";
    ctx.fillText(title, x, y);
    const gradient = ctx.createLinearGradient(x, 0, x + LEGEND_BAR_PX, 0);
    stops.forEach((s, i) => gradient.addColorStop(i / (stops.length - 1), s));
    ctx.fillStyle = gradient;
    ctx.fillRect(x, y + FONT_PX + 4, LEGEND_BAR_PX, 8);
    ctx.fillStyle = this.text;
    ctx.fillText(String(low), x, y + FONT_PX + 14);
    ctx.textAlign = "right";
    ctx.fillText(String(high), x + LEGEND_BAR_PX, y + FONT_PX + 14);
    if (threshold !== null && threshold > low && threshold < high) {
      const tx = x + ((threshold - low) / (high - low)) * LEGEND_BAR_PX;
      ctx.fillRect(tx - 1, y + FONT_PX + 1, 2, 14);
      ctx.textAlign = "center";
      ctx.fillText(`ε ${threshold}`, tx, y + FONT_PX + 14);
    }
    return Math.max(LEGEND_BAR_PX, ctx.measureText(title).width) + 28;
  }

  drawLegends(ctx) {
    const p = this.payload;
    const legend = p.legend;
    const high = legend.perHead ? "max" : legend.high;
    let x = this.left;
    x += this.drawLegend(ctx, x, legend.title, legend.stops, legend.low, high, null);
    if (p.measure) {
      const m = p.measure;
      this.drawLegend(ctx, x, `bars: ${m.name}`, m.stops, m.low, m.high, m.threshold);
    }
  }

  hit(event) {
    const bounds = this.canvas.getBoundingClientRect();
    const x = event.clientX - bounds.left - this.left;
    const y = event.clientY - bounds.top - this.top;
    const head = Math.floor(x / this.tile);
    const layer = Math.floor(y / this.rowHeight);
    if (x < 0 || y < 0 || head >= this.payload.heads || layer >= this.payload.layers) return null;
    if (x - head * this.tile > this.side) return null; // in the gap
    return [layer, head];
  }

  onMove(event) {
    this.setHover(this.hit(event));
  }

  setHover(cell) {
    const same = cell && this.hover && cell[0] === this.hover[0] && cell[1] === this.hover[1];
    if (same || (!cell && !this.hover)) return;
    this.hover = cell;
    this.showTip(cell);
    this.draw();
  }

  describe(cell) {
    const p = this.payload;
    let text = `layer ${cell[0]}, head ${cell[1]}`;
    if (p.measure) {
      const value = p.measure.values[cell[0] * p.heads + cell[1]];
      text += ` · ${p.measure.name} ${value === null ? "–" : value}`;
    }
    return text;
  }

  showTip(cell) {
    if (!cell) {
      this.tip.hidden = true;
      return;
    }
    this.tip.textContent = `${this.describe(cell)} · click to open`;
    this.tip.hidden = false;
    const [x, y] = this.origin(cell[0], cell[1]);
    const left = Math.min(x, this.width - this.tip.offsetWidth - 2);
    this.tip.style.left = `${Math.max(0, left)}px`;
    this.tip.style.top = `${Math.max(0, y - this.tip.offsetHeight - 4)}px`;
  }

  onKey(event) {
    const p = this.payload;
    const moves = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0] };
    if (event.key in moves) {
      const start = this.cursor || p.selected || [0, 0];
      const [dl, dh] = moves[event.key];
      this.cursor = [
        Math.max(0, Math.min(p.layers - 1, start[0] + dl)),
        Math.max(0, Math.min(p.heads - 1, start[1] + dh)),
      ];
      this.showTip(this.cursor);
      this.draw();
      event.preventDefault();
    } else if ((event.key === "Enter" || event.key === " ") && (this.cursor || p.selected)) {
      this.open(this.cursor || p.selected);
      event.preventDefault();
    }
  }

  open(cell) {
    this.setTriggerValue("open", { layer: cell[0], head: cell[1] });
  }

  destroy() {
    this.resizeObserver.disconnect();
  }
}

export default function headGrid(component) {
  const { data, parentElement, setTriggerValue } = component;
  const payload = typeof data === "string" ? JSON.parse(data) : data;
  let root = parentElement.querySelector(".hg-root");
  if (!root) {
    root = document.createElement("div");
    root.className = "hg-root";
    parentElement.append(root);
  }
  // One grid per mounted component: a rerun updates it in place (no reload of an unchanged image).
  if (!root.__grid) root.__grid = new HeadGrid(root, setTriggerValue);
  const grid = root.__grid;
  grid.setTriggerValue = setTriggerValue;
  grid.update(payload);
  return () => {
    if (!root.isConnected) grid.destroy();
  };
}
