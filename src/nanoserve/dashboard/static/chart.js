// A line chart on a canvas: series of [x, y|null] drawn over a time axis, redrawn on demand.

const DPR = () => window.devicePixelRatio || 1;

export class LineChart {
  constructor(canvas, series, { unit = "", min = 0 } = {}) {
    this.canvas = canvas;
    this.series = series; // [{label, color, key}]
    this.unit = unit;
    this.min = min;
    this.points = [];
    this.span = 300;
  }

  set(points, span) {
    this.points = points;
    this.span = span;
    this.draw();
  }

  draw() {
    const c = this.canvas;
    const w = c.clientWidth, hgt = c.clientHeight;
    if (!w || !hgt) return;
    const dpr = DPR();
    if (c.width !== w * dpr || c.height !== hgt * dpr) { c.width = w * dpr; c.height = hgt * dpr; }
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, hgt);
    const pad = { l: 44, r: 8, t: 8, b: 18 };
    const pw = w - pad.l - pad.r, ph = hgt - pad.t - pad.b;
    const now = this.points.length ? this.points[this.points.length - 1].t : Date.now() / 1000;
    const x0 = now - this.span;
    let max = 0;
    for (const p of this.points) for (const s of this.series) {
      const v = p[s.key]; if (v !== null && v !== undefined && v > max) max = v;
    }
    max = niceMax(max || 1);
    g.font = "11px system-ui, sans-serif";
    g.fillStyle = "#8a97b3";
    g.strokeStyle = "#1f2a45";
    g.lineWidth = 1;
    for (let i = 0; i <= 3; i++) {
      const y = pad.t + ph - (ph * i) / 3;
      g.beginPath(); g.moveTo(pad.l, y + 0.5); g.lineTo(pad.l + pw, y + 0.5); g.stroke();
      g.fillText(label(max * i / 3) + this.unit, 4, y + 4);
    }
    const minutes = Math.round(this.span / 60);
    g.fillText(`−${minutes} min`, pad.l, hgt - 4);
    g.fillText("now", pad.l + pw - 22, hgt - 4);
    const has = (v) => v !== undefined && v !== null;
    for (const s of this.series) {
      g.strokeStyle = s.color; g.fillStyle = s.color; g.lineWidth = 1.8; g.beginPath();
      const xy = (p) => [pad.l + ((p.t - x0) / this.span) * pw, pad.t + ph - (Math.min(p[s.key], max) / max) * ph];
      let pen = false;
      const alone = [];
      this.points.forEach((p, i) => {
        if (!has(p[s.key])) { pen = false; return; }
        const [x, y] = xy(p);
        if (pen) g.lineTo(x, y); else g.moveTo(x, y);
        const next = this.points[i + 1];
        if (!pen && !(next && has(next[s.key]))) alone.push([x, y]); // a point with no line: a dot
        pen = true;
      });
      g.stroke();
      for (const [x, y] of alone) { g.beginPath(); g.arc(x, y, 2.5, 0, 2 * Math.PI); g.fill(); }
    }
  }
}

function niceMax(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function label(v) {
  return v >= 1000 ? `${(v / 1000).toFixed(1)}k` : v >= 10 ? Math.round(v).toString() : v.toFixed(1);
}
