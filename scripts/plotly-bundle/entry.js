// plotly.js core (every layout component: legends, axes, annotations, shapes, error bars, colour bars,
// the mode bar) and only the trace types attention-nas draws: dashboards/_figures.py uses go.Scatter
// (go.Scattergl above WEBGL_FROM points), go.Bar, go.Box and go.Parcoords. A figure with any other
// trace type would not draw: tests/test_plotly_bundle.py checks the figures' types against this list.
'use strict';
var Plotly = require('plotly.js/lib/core');
Plotly.register([
    require('plotly.js/lib/bar'),
    require('plotly.js/lib/box'),
    require('plotly.js/lib/scattergl'),
    require('plotly.js/lib/parcoords'),
]);
module.exports = Plotly;
