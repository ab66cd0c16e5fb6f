// A small live line chart on a <canvas>: series of (time, value) samples, drawn with a time
// axis of the last `windowSeconds` and a value axis from 0 to the largest value shown.
// No dependencies; redrawn whenever samples are added.
"use strict";

const PALETTE = ["#2f6fde", "#d64545", "#1f9d55", "#d97706", "#7c3aed", "#0891b2",
                 "#db2777", "#65a30d", "#475569", "#b45309"];

class LiveChart {
  constructor(canvas, { windowSeconds = 300, percent = true } = {}) {
    this.canvas = canvas;
    this.windowSeconds = windowSeconds;
    this.percent = percent;
    this.series = new Map();   // name -> [[t, v], ...]
    this.colors = new Map();
    this.samples = 0;
  }

  color(name) {
    if (!this.colors.has(name)) this.colors.set(name, PALETTE[this.colors.size % PALETTE.length]);
    return this.colors.get(name);
  }

  // One sample per series at time `t` (seconds); series missing from `values` get 0 if known.
  add(t, values) {
    for (const name of Object.keys(values)) if (!this.series.has(name)) this.series.set(name, []);
    for (const [name, points] of this.series) {
      points.push([t, values[name] || 0]);
      while (points.length && points[0][0] < t - this.windowSeconds) points.shift();
    }
    this.samples += 1;
    this.canvas.dataset.samples = String(this.samples);
    this.draw(t);
  }

  draw(now) {
    const canvas = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth, height = canvas.clientHeight;
    if (!width || !height) return;
    if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
    if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const left = 44, right = 8, top = 8, bottom = 20;
    const plotW = width - left - right, plotH = height - top - bottom;
    let top_ = 0;
    for (const points of this.series.values()) for (const [, v] of points) top_ = Math.max(top_, v);
    // Four grid steps of a round size (5%, 10%, 20%, 25% of the range...) that cover the top.
    const steps = this.percent ? [0.025, 0.05, 0.1, 0.2, 0.25] : [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000];
    const grid = steps.find((s) => s * 4 >= top_) || Math.ceil(top_ / 4);
    const max = grid * 4;
    const x = (t) => left + plotW * (1 - (now - t) / this.windowSeconds);
    const y = (v) => top + plotH * (1 - v / max);
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = "#6b7480";
    ctx.strokeStyle = "#e2e5ea";
    ctx.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const v = (max * i) / 4, py = Math.round(y(v)) + 0.5;
      ctx.beginPath(); ctx.moveTo(left, py); ctx.lineTo(width - right, py); ctx.stroke();
      ctx.fillText(this.percent ? `${Number((v * 100).toFixed(1))}%` : String(Number(v.toFixed(1))), 4, py + 4);
    }
    const step = this.windowSeconds > 300 ? 60 : 30;
    for (let s = 0; s <= this.windowSeconds; s += step) {
      const px = x(now - s);
      ctx.fillText(s ? `-${s}s` : "now", px - (s ? 14 : 22), height - 5);
    }
    ctx.lineWidth = 2;
    for (const [name, points] of this.series) {
      if (!points.length) continue;
      ctx.strokeStyle = this.color(name);
      ctx.beginPath();
      points.forEach(([t, v], i) => (i ? ctx.lineTo(x(t), y(v)) : ctx.moveTo(x(t), y(v))));
      ctx.stroke();
    }
  }

  legend() {
    return [...this.series.keys()].map((name) => {
      const points = this.series.get(name);
      const last = points.length ? points[points.length - 1][1] : 0;
      return { name, color: this.color(name), last };
    });
  }
}

window.LiveChart = LiveChart;
