// The report's inline script: draws every heatmap canvas from the embedded ReportData (one pixel per bin,
// scaled up by CSS), the colour scales beside them, and a read-out of the bin under the pointer.
// Mass maps use a perceptual dark-to-bright scale on sqrt(value / max of the map); keep-patterns go from
// white (nothing kept) to blue (every pair kept).

export const HEATMAP_SCRIPT = `
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('report-data').textContent);
  var MASS = [[13, 8, 135], [84, 2, 163], [139, 10, 165], [185, 50, 137], [219, 92, 104], [244, 136, 73], [254, 188, 43], [240, 249, 33]];
  var KEEP = [[255, 255, 255], [47, 111, 219]];
  function colour(stops, t) {
    t = Math.max(0, Math.min(1, t));
    var x = t * (stops.length - 1);
    var i = Math.min(stops.length - 2, Math.floor(x));
    var f = x - i;
    var a = stops[i], b = stops[i + 1];
    return [a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1]), a[2] + f * (b[2] - a[2])];
  }
  function mapOf(canvas) {
    var site = data.sites[Number(canvas.dataset.site)];
    var h = site.heatmaps;
    var head = Number(canvas.dataset.head);
    if (canvas.dataset.kind === 'mass') return { h: h, values: h.heads[head].mass };
    return { h: h, values: h.keep.length === 1 ? h.keep[0] : h.keep[head] };
  }
  function draw(canvas) {
    var m = mapOf(canvas);
    var rows = m.h.rows, cols = m.h.cols, v = m.values;
    var mass = canvas.dataset.kind === 'mass';
    var max = 0;
    for (var k = 0; k < v.length; k++) if (v[k] > max) max = v[k];
    canvas.width = cols;
    canvas.height = rows;
    var ctx = canvas.getContext('2d');
    var img = ctx.createImageData(cols, rows);
    for (var k = 0; k < rows * cols; k++) {
      var c = mass ? colour(MASS, max > 0 ? Math.sqrt(v[k] / max) : 0) : colour(KEEP, v[k]);
      img.data[4 * k] = c[0]; img.data[4 * k + 1] = c[1]; img.data[4 * k + 2] = c[2]; img.data[4 * k + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
    canvas.dataset.max = String(max);
    var readout = document.getElementById(canvas.dataset.readout);
    canvas.addEventListener('mousemove', function (e) {
      var r = canvas.getBoundingClientRect();
      var c = Math.min(cols - 1, Math.floor(((e.clientX - r.left) / r.width) * cols));
      var q = Math.min(rows - 1, Math.floor(((e.clientY - r.top) / r.height) * rows));
      var q0 = Math.floor((q * m.h.nq) / rows), q1 = Math.floor(((q + 1) * m.h.nq) / rows) - 1;
      var k0 = Math.floor((c * m.h.nk) / cols), k1 = Math.floor(((c + 1) * m.h.nk) / cols) - 1;
      var x = v[q * cols + c];
      if (readout) readout.textContent = 'queries ' + q0 + '-' + q1 + ', keys ' + k0 + '-' + k1 + ': ' +
        (mass ? 'mean probability ' + x.toPrecision(3) : (100 * x).toFixed(1) + '% of pairs kept');
    });
  }
  function scale(canvas) {
    var kind = canvas.dataset.kind;
    canvas.width = 64;
    canvas.height = 1;
    var ctx = canvas.getContext('2d');
    var img = ctx.createImageData(64, 1);
    for (var k = 0; k < 64; k++) {
      var c = kind === 'mass' ? colour(MASS, Math.sqrt(k / 63)) : colour(KEEP, k / 63);
      img.data[4 * k] = c[0]; img.data[4 * k + 1] = c[1]; img.data[4 * k + 2] = c[2]; img.data[4 * k + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
  }
  var maps = document.querySelectorAll('canvas.heatmap');
  for (var i = 0; i < maps.length; i++) draw(maps[i]);
  var scales = document.querySelectorAll('canvas.scale-bar');
  for (var j = 0; j < scales.length; j++) scale(scales[j]);
  document.body.dataset.rendered = String(maps.length);
})();
`;
