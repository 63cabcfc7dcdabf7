// comfy-quality dashboard: draws the charts from the JSON the page embeds (<script type="application/json">).
// No inline script anywhere (the Content-Security-Policy forbids it); Chart.js is vendored next to this file.
"use strict";
(function () {
  const GRADE_COLORS = { A: "#1f9d55", B: "#65a30d", C: "#d4a106", D: "#e07b1a", F: "#d63a3a", failed: "#8a939e" };
  const PALETTE = ["#2f5bd3", "#d63a3a", "#1f9d55", "#e07b1a", "#8e44ad", "#16a2b8", "#b5651d", "#5d6d7e"];

  function embedded(id) {
    const el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }

  function bar(canvas, labels, datasets, extra) {
    return new Chart(canvas, Object.assign({
      type: "bar",
      data: { labels: labels, datasets: datasets },
      options: {
        animation: false,
        maintainAspectRatio: false,
        scales: { y: { beginAtZero: true } },
        plugins: { legend: { display: datasets.length > 1 } },
      },
    }, extra || {}));
  }

  // Every day (YYYY-MM-DD) or month (YYYY-MM) from the first to the last period, so time is spaced evenly.
  function continuous(periods) {
    if (periods.length < 2 || periods.length > 2000) return periods;
    const monthly = periods[0].length === 7;
    const out = [];
    const last = periods[periods.length - 1];
    const cursor = new Date(periods[0] + (monthly ? "-01" : "") + "T00:00:00Z");
    while (out.length < 5000) {
      const text = cursor.toISOString().slice(0, monthly ? 7 : 10);
      out.push(text);
      if (text >= last) break;
      if (monthly) cursor.setUTCMonth(cursor.getUTCMonth() + 1);
      else cursor.setUTCDate(cursor.getUTCDate() + 1);
    }
    return out;
  }

  function drawDimensions(data) {
    const canvas = document.getElementById("dimension-chart");
    if (!canvas || !data.attempts.length) return 0;
    const datasets = data.attempts.map(function (a, i) {
      return {
        label: "attempt " + a.attempt + (a.best ? " (kept)" : ""),
        data: a.values,
        backgroundColor: a.best ? GRADE_COLORS.A : PALETTE[i % PALETTE.length] + "99",
        borderColor: a.best ? GRADE_COLORS.A : PALETTE[i % PALETTE.length],
        borderWidth: 1,
      };
    });
    const chart = bar(canvas, data.labels, datasets);
    chart.options.scales.y.max = 10;
    chart.update();
    return 1;
  }

  function drawCharts(data) {
    let drawn = 0;
    const grades = ["A", "B", "C", "D", "F"];
    const gradeCanvas = document.getElementById("grades-chart");
    if (gradeCanvas) {
      const counts = grades.map(function (g) { return data.grades.counts[g]; })
        .concat([data.grades.not_graded || 0, data.grades.ungraded]);
      const labels = grades.concat(["not graded", "failed"]);
      bar(gradeCanvas, labels, [{
        label: "generations",
        data: counts,
        backgroundColor: labels.map(function (g) { return GRADE_COLORS[g]; }),
      }], {
        options: {
          animation: false,
          maintainAspectRatio: false,
          plugins: { legend: { display: false } },
          scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
          onClick: function (_event, elements) {
            if (!elements.length) return;
            const grade = labels[elements[0].index];
            if (data.grade_links[grade]) window.location.assign(data.grade_links[grade]);
          },
        },
      });
      drawn++;
    }
    const dimCanvas = document.getElementById("dimensions-chart");
    if (dimCanvas) {
      const keys = data.dimension_order;
      const chart = bar(dimCanvas, keys.map(function (k) { return data.dimension_labels[k]; }), [{
        label: "average",
        data: keys.map(function (k) { return data.dimensions[k]; }),
        backgroundColor: keys.map(function (_k, i) { return i === 0 ? "#1d232b" : PALETTE[0]; }),
      }]);
      chart.options.scales.y.max = 10;
      chart.update();
      drawn++;
    }
    const trendCanvas = document.getElementById("trend-chart");
    if (trendCanvas) {
      const periods = continuous(Array.from(new Set(data.trend.map(function (p) { return p.period; }))).sort());
      const workflows = Array.from(new Set(data.trend.map(function (p) { return p.workflow || "all"; }))).sort();
      const datasets = workflows.map(function (wf, i) {
        const byPeriod = {};
        data.trend.forEach(function (p) { if ((p.workflow || "all") === wf) byPeriod[p.period] = p.composite; });
        return {
          label: wf,
          data: periods.map(function (p) { return p in byPeriod ? byPeriod[p] : null; }),
          borderColor: PALETTE[i % PALETTE.length],
          backgroundColor: PALETTE[i % PALETTE.length],
          spanGaps: true,
          tension: 0,
          pointRadius: periods.length > 60 ? 0 : 3,
        };
      });
      new Chart(trendCanvas, {
        type: "line",
        data: { labels: periods, datasets: datasets },
        options: {
          animation: false,
          maintainAspectRatio: false,
          interaction: { mode: "index", intersect: false },
          scales: { y: { min: 0, max: 10, title: { display: true, text: "average composite" } } },
        },
      });
      drawn++;
    }
    const strategyCanvas = document.getElementById("strategies-chart");
    if (strategyCanvas) {
      const rows = data.strategies;
      const chart = bar(strategyCanvas, rows.map(function (s) { return s.strategy || "none"; }), [
        { label: "first attempt", data: rows.map(function (s) { return s.first_composite; }), backgroundColor: "#9aa5b1" },
        { label: "kept attempt", data: rows.map(function (s) { return s.best_composite; }), backgroundColor: GRADE_COLORS.A },
      ]);
      chart.options.scales.y.max = 10;
      chart.update();
      drawn++;
    }
    return drawn;
  }

  function start() {
    let drawn = 0;
    if (typeof Chart !== "undefined") {
      Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
      const dims = embedded("dimension-data");
      if (dims) drawn += drawDimensions(dims);
      const charts = embedded("charts-data");
      if (charts) drawn += drawCharts(charts);
    }
    document.body.dataset.chartsDrawn = String(drawn);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
