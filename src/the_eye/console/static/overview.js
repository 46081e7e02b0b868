// The overview's charts: events and errors per bucket, drawn with uPlot from the JSON in each
// `data-chart` attribute ([times in seconds, events, errors]). Drawn on load and again each
// time htmx swaps in a fresh panel; charts of a panel swapped out are destroyed.
(function () {
  "use strict";

  var HEIGHT = 220;
  var charts = [];

  function utc(seconds) {
    return uPlot.tzDate(new Date(seconds * 1000), "Etc/UTC");
  }

  function options(element) {
    return {
      width: Math.max(element.clientWidth, 240),
      height: HEIGHT,
      tzDate: utc,
      legend: { live: false },
      cursor: { drag: { x: false, y: false } },
      scales: {
        y: { range: function (u, min, max) { return [0, Math.max(max, 1)]; } }
      },
      series: [
        {},
        { label: "Events", stroke: "#2453c7", fill: "rgba(36, 83, 199, 0.12)", width: 2 },
        { label: "Errors", stroke: "#b42318", width: 2 }
      ],
      axes: [{}, { size: 50 }]
    };
  }

  function draw() {
    charts = charts.filter(function (chart) {
      if (chart.root.isConnected) return true;
      chart.destroy();
      return false;
    });
    document.querySelectorAll("[data-chart]").forEach(function (element) {
      if (element.getAttribute("data-drawn")) return;
      element.setAttribute("data-drawn", "true");
      var data = JSON.parse(element.getAttribute("data-chart"));
      var chart = new uPlot(options(element), data, element);
      chart.root.setAttribute("aria-hidden", "true");
      charts.push(chart);
    });
  }

  function resize() {
    charts.forEach(function (chart) {
      var width = Math.max(chart.root.parentNode.clientWidth, 240);
      if (width !== chart.width) chart.setSize({ width: width, height: HEIGHT });
    });
  }

  document.addEventListener("DOMContentLoaded", draw);
  document.addEventListener("htmx:afterSettle", draw);
  window.addEventListener("resize", resize);
})();
