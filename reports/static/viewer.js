/* cfanet-bench report: the interactive comparison viewer (viewer.html).
 *
 * Reads window.VIEWER_DATA (viewer_data.js, written by reports/viewer.py) and shows one scene at a time:
 * the inputs, the ground truth and the chosen methods side by side (mode "side"), two of them under a
 * draggable divider (mode "ab"), or the per-pixel absolute error of one against the ground truth or
 * another method (mode "error"). Zoom and pan are shared by every panel. Works opened from disk (file://),
 * with no network and no library: images are only referenced (<img src>), never read back, so the error
 * map is composed by the browser (mix-blend-mode: difference + an SVG colour-map filter) rather than
 * computed from pixels (a canvas drawn from a local file is tainted in Chromium).
 *
 * State lives in the URL hash (#scale=2&scene=..&methods=a,b&mode=side&zoom=..&x=..&y=..), kept up to date
 * with history.replaceState. window.viewer exposes state() and setters for tests.
 */
(function () {
  "use strict";

  var doc = document;
  var body = doc.body;
  var DATA = window.VIEWER_DATA;

  var MODES = ["side", "ab", "error"];
  var INPUT_ROLES = ["over", "under", "gt"];
  var ROLE_NAMES = { over: "Over-exposed input", under: "Under-exposed input", gt: "Ground truth" };
  var GAINS = [1, 4, 16];
  var MISSING = "\u2013";
  var ZOOM_STEP = 2;         // keyboard and buttons
  var MAX_ZOOM = 128;        // screen pixels per image pixel
  var PIXELATED_AT = 2;      // nearest-neighbour at and above this zoom
  var SCENE_SCORES_MAX = 6;  // per-scene scores shown in the scene list (the first shown methods)
  var HASH_DELAY_MS = 250;   // continuous interactions (wheel, drag) update the hash at most this often

  /* The error map's colour scale: dark blue -> teal -> green -> yellow, luminance rising steadily
   * (defined here, sampled into the SVG filter's lookup tables and the legend, so both agree). */
  var COLOR_STOPS = [
    [0.00, [12, 7, 46]], [0.15, [35, 27, 110]], [0.30, [40, 64, 150]], [0.45, [30, 105, 160]],
    [0.60, [25, 145, 150]], [0.72, [60, 178, 120]], [0.85, [150, 205, 70]], [1.00, [250, 230, 60]]
  ];
  var COLOR_SAMPLES = 16;

  function colormap(n) {
    var out = [];
    for (var i = 0; i < n; i++) {
      var t = i / (n - 1), k = 1;
      while (k < COLOR_STOPS.length - 1 && COLOR_STOPS[k][0] < t) k++;
      var a = COLOR_STOPS[k - 1], b = COLOR_STOPS[k], f = (t - a[0]) / (b[0] - a[0]);
      out.push([0, 1, 2].map(function (c) { return Math.round(a[1][c] + f * (b[1][c] - a[1][c])); }));
    }
    return out;
  }
  var COLORS = colormap(COLOR_SAMPLES);

  /* ---------- small helpers ---------- */

  function $(id) { return doc.getElementById(id); }

  function el(tag, className, text) {
    var node = doc.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function dict() { return Object.create(null); }  // a map safe for any key ("__proto__", "constructor")

  function has(obj, key) { return obj !== null && typeof obj === "object" && Object.prototype.hasOwnProperty.call(obj, key); }

  function own(obj, key) { return has(obj, key) ? obj[key] : undefined; }

  function isNumber(v) { return typeof v === "number" && isFinite(v); }

  function clamp(v, lo, hi) { return Math.min(hi, Math.max(lo, v)); }

  function unitOf(metric) {
    var unit = String(metric.unit || "").trim();
    return unit ? " " + unit : "";
  }

  function fmt(metric, value, withUnit) {
    if (!isNumber(value)) return MISSING;
    var d = Number.isInteger(metric.decimals) && metric.decimals >= 0 && metric.decimals <= 12 ? metric.decimals : 4;
    return value.toFixed(d) + (withUnit ? unitOf(metric) : "");
  }

  /* ---------- data ---------- */

  function fail(message) {
    var box = $("viewer-error") || el("p", "notice demo");
    box.id = "viewer-error";
    box.hidden = false;
    box.textContent = message;
    if (!box.parentNode) (($("panels") || body)).appendChild(box);
    body.dataset.viewerReady = "1";
    body.dataset.viewerError = "1";
  }

  if (!DATA || typeof DATA !== "object" || !DATA.scenes) {
    fail("No viewer data: viewer_data.js is missing or could not be read. Rebuild the report with `cfanet-bench report`.");
    return;
  }

  var metrics = (Array.isArray(DATA.metrics) ? DATA.metrics : []).filter(function (m) { return m && m.name; })
    .map(function (m) {
      return { name: String(m.name), label: String(m.label || m.name), unit: m.unit || "",
               higher: m.higher_is_better !== false, decimals: m.decimals };
    });
  var metricByName = dict();
  metrics.forEach(function (m) { metricByName[m.name] = m; });

  var methods = (Array.isArray(DATA.methods) ? DATA.methods : []).filter(function (m) { return m && m.name; })
    .map(function (m) { return { name: String(m.name), order: m.order || "", components: m.components || [] }; });
  var methodIndex = dict();
  methods.forEach(function (m, i) { methodIndex[m.name] = i; });
  var reference = typeof DATA.reference === "string" && DATA.reference in methodIndex ? DATA.reference : null;

  function scenesOf(scale) {
    var list = own(DATA.scenes, String(scale));
    return Array.isArray(list) ? list : [];
  }

  var scales = (Array.isArray(DATA.scales) ? DATA.scales : Object.keys(DATA.scenes))
    .map(String).filter(function (s) { return scenesOf(s).length > 0; });
  if (!scales.length) scales = Object.keys(DATA.scenes).filter(function (s) { return scenesOf(s).length > 0; });

  var sceneIndexCache = dict();
  function sceneIndex(scale) {
    var key = String(scale);
    if (!sceneIndexCache[key]) {
      var index = dict();
      scenesOf(key).forEach(function (scene, i) { if (scene && !(scene.name in index)) index[scene.name] = i; });
      sceneIndexCache[key] = index;
    }
    return sceneIndexCache[key];
  }

  function findScene(scale, name) {
    var i = sceneIndex(scale)[name];
    return typeof name === "string" && name in sceneIndex(scale) ? scenesOf(scale)[i] : null;
  }

  function score(scene, method, metricName) {
    var s = scene ? own(scene.scores, method) : null;
    var v = s ? own(s, metricName) : null;
    return isNumber(v) ? v : null;
  }

  function sizeOf(scene) {
    var s = scene && Array.isArray(scene.size) ? scene.size : null;
    var h = s && s[0] > 0 ? +s[0] : 256, w = s && s[1] > 0 ? +s[1] : 256;
    return { h: h, w: w };
  }

  function isInputRole(role) { return INPUT_ROLES.indexOf(role) >= 0; }

  function imageOf(scene, role) {
    if (!scene) return null;
    var src = isInputRole(role) ? own(scene.inputs, role) : own(scene.images, role);
    return typeof src === "string" && src ? src : null;
  }

  function roleName(role) { return isInputRole(role) ? ROLE_NAMES[role] : role; }

  /* ---------- state ---------- */

  var state = {
    scale: scales[0] || null, scene: null, methods: [], mode: "side",
    zoom: 1, x: 0, y: 0, fitted: true,
    divider: 0.5, abLeft: null, abRight: null,             // preferences; the effective ones are in `shown`
    errorTarget: null, errorAgainst: "gt", gain: 4,
    sortMetric: "table", sceneSort: "list"
  };
  var shown = { abLeft: null, abRight: null, errorTarget: null, errorAgainst: null };  // what is on screen
  var meanCache = dict();

  function currentScene() { return findScene(state.scale, state.scene); }

  function canonicalMethods(list) {
    var seen = dict();
    return (list || []).map(String).filter(function (name) {
      if (!(name in methodIndex) || seen[name]) return false;
      seen[name] = true;
      return true;
    }).sort(function (a, b) { return methodIndex[a] - methodIndex[b]; });
  }

  function betterFirst(metric) {
    return function (a, b) {
      if (a.v === null && b.v === null) return a.i - b.i;
      if (a.v === null) return 1;
      if (b.v === null) return -1;
      if (a.v !== b.v) return metric.higher ? b.v - a.v : a.v - b.v;
      return a.i - b.i;
    };
  }

  function meanScores(scale, metric) {
    var key = scale + "\u0000" + metric.name;
    if (!meanCache[key]) {
      var sums = methods.map(function () { return [0, 0]; });
      scenesOf(scale).forEach(function (scene) {
        methods.forEach(function (m, i) {
          var v = score(scene, m.name, metric.name);
          if (v !== null) { sums[i][0] += v; sums[i][1] += 1; }
        });
      });
      meanCache[key] = sums.map(function (s) { return s[1] ? s[0] / s[1] : null; });
    }
    return meanCache[key];
  }

  /* The reference method plus the best 3 others by the first metric's mean over the scale's scenes. */
  function defaultMethods(scale) {
    var chosen = reference ? [reference] : [];
    var metric = metrics[0];
    var others = methods.map(function (m, i) { return { name: m.name, i: i, v: null }; })
      .filter(function (o) { return o.name !== reference; });
    if (metric) {
      var means = meanScores(scale, metric);
      others.forEach(function (o) { o.v = means[o.i]; });
      others = others.filter(function (o) { return o.v !== null; }).sort(betterFirst(metric));
    }
    return canonicalMethods(chosen.concat(others.slice(0, 3).map(function (o) { return o.name; })));
  }

  /* Methods in the order of the method list: table order, or best first on this scene by the sort metric. */
  function displayOrder() {
    var metric = metricByName[state.sortMetric];
    var names = methods.map(function (m) { return m.name; });
    if (!metric) return names;
    var scene = currentScene();
    return names.map(function (name, i) { return { name: name, i: i, v: score(scene, name, metric.name) }; })
      .sort(betterFirst(metric)).map(function (o) { return o.name; });
  }

  function shownInOrder() {
    var on = dict();
    state.methods.forEach(function (m) { on[m] = true; });
    return displayOrder().filter(function (m) { return on[m]; });
  }

  /* ---------- the URL hash ---------- */

  function parseHash() {
    var out = dict();
    var text = location.hash.replace(/^#/, "");
    if (!text) return out;
    text.split("&").forEach(function (part) {
      var eq = part.indexOf("=");
      if (eq < 0) return;
      var key = part.slice(0, eq), raw = part.slice(eq + 1);
      try {
        out[key] = key === "methods"
          ? (raw ? raw.split(",").map(function (v) { return decodeURIComponent(v); }) : [])
          : decodeURIComponent(raw);
      } catch (e) { /* a malformed escape: ignore the key */ }
    });
    return out;
  }

  function round(v, digits) { var f = Math.pow(10, digits); return Math.round(v * f) / f; }

  function buildHash() {
    var enc = encodeURIComponent;
    var parts = ["scale=" + enc(state.scale), "scene=" + enc(state.scene || ""),
                 "methods=" + state.methods.map(enc).join(","), "mode=" + state.mode];
    if (!state.fitted) parts.push("zoom=" + round(state.zoom, 4), "x=" + round(state.x, 2), "y=" + round(state.y, 2));
    if (state.mode === "ab") {
      parts.push("a=" + enc(shown.abLeft || ""), "b=" + enc(shown.abRight || ""), "divider=" + round(state.divider, 4));
    } else if (state.mode === "error") {
      parts.push("target=" + enc(shown.errorTarget || ""), "against=" + enc(shown.errorAgainst || ""), "gain=" + state.gain);
    }
    if (state.sortMetric !== "table") parts.push("sort=" + enc(state.sortMetric));
    return "#" + parts.join("&");
  }

  /* Continuous interactions (wheel, drag) write at most every HASH_DELAY_MS, the last one always: browsers
   * ignore history updates that come too often. */
  var hashTimer = null, lastHashWrite = 0;
  function commit(continuous) {
    if (hashTimer) { clearTimeout(hashTimer); hashTimer = null; }
    var wait = HASH_DELAY_MS - (Date.now() - lastHashWrite);
    if (continuous && wait > 0) {
      hashTimer = setTimeout(function () { hashTimer = null; writeHash(); }, wait);
      return;
    }
    writeHash();
  }

  function writeHash() {
    var hash = buildHash();
    if (hash === location.hash) return;
    lastHashWrite = Date.now();
    try {
      history.replaceState(history.state, "", hash);
    } catch (e) {
      try { location.replace(hash); } catch (e2) { /* nothing else to do */ }
    }
  }

  // The scene to open on: the first that has any method image (else the first, else none).
  function firstSceneName(scale) {
    var list = scenesOf(scale);
    for (var i = 0; i < list.length; i++) {
      if (Object.keys(list[i].images || {}).length) return list[i].name;
    }
    return list.length ? list[0].name : null;
  }

  function applyHash(h) {
    if (h.scale && scales.indexOf(String(h.scale)) >= 0) state.scale = String(h.scale);
    state.scene = h.scene !== undefined && findScene(state.scale, h.scene) ? h.scene : null;
    if (state.scene === null) state.scene = firstSceneName(state.scale);
    state.methods = h.methods !== undefined ? canonicalMethods(h.methods) : defaultMethods(state.scale);
    state.mode = MODES.indexOf(h.mode) >= 0 ? h.mode : "side";
    if (h.sort !== undefined) state.sortMetric = h.sort in metricByName ? h.sort : "table";
    if (h.a !== undefined) state.abLeft = h.a || null;
    if (h.b !== undefined) state.abRight = h.b || null;
    if (h.divider !== undefined && isFinite(parseFloat(h.divider))) state.divider = clamp(parseFloat(h.divider), 0, 1);
    if (h.target !== undefined) state.errorTarget = h.target || null;
    if (h.against !== undefined) state.errorAgainst = h.against || "gt";
    if (h.gain !== undefined && GAINS.indexOf(parseInt(h.gain, 10)) >= 0) state.gain = parseInt(h.gain, 10);
    var z = parseFloat(h.zoom);
    if (isNumber(z) && z > 0) {
      var size = sizeOf(currentScene());
      state.fitted = false;
      state.zoom = clamp(z, 0.01, MAX_ZOOM);
      state.x = isNumber(parseFloat(h.x)) ? parseFloat(h.x) : size.w / 2;
      state.y = isNumber(parseFloat(h.y)) ? parseFloat(h.y) : size.h / 2;
    } else {
      state.fitted = true;
    }
  }

  /* ---------- page furniture ---------- */

  var ui = {};

  function setupHeader() {
    var protocol = $("viewer-protocol");
    if (protocol && !protocol.textContent.trim() && DATA.protocol) protocol.textContent = String(DATA.protocol);
    if (protocol) protocol.hidden = !protocol.textContent.trim();
    var demo = Array.isArray(DATA.demo_weights) ? DATA.demo_weights.map(String) : [];
    if (demo.length && !doc.querySelector(".notice.demo")) {
      var notices = $("viewer-notices") || body;
      notices.appendChild(el("p", "notice demo",
        "Demo weights: " + demo.join(", ") + " ran with demo weights, small configurations trained briefly on demo " +
        "photographs, not the authors' published weights. Their images show that the benchmark runs end to end; " +
        "they say nothing about how the published methods look."));
    }
  }

  function option(value, text, disabled) {
    var o = el("option", null, text);
    o.value = value;
    if (disabled) o.disabled = true;
    return o;
  }

  function setupControls() {
    ui.sceneList = $("scene-list");
    ui.methodList = $("method-list");
    ui.panels = $("panels");
    ui.abView = $("ab-view");
    ui.errorView = $("error-view");
    ui.views = $("views") || ui.panels.parentNode;

    // scale switcher (only with more than one scale)
    var slot = $("scale-slot");
    if (scales.length > 1 && slot) {
      var label = el("label", "inline-control", "scale ");
      ui.scaleSelect = el("select");
      ui.scaleSelect.id = "scale-select";
      scales.forEach(function (s) { ui.scaleSelect.appendChild(option(s, "\u00d7" + s)); });
      ui.scaleSelect.addEventListener("change", function () { api.setScale(ui.scaleSelect.value); });
      label.appendChild(ui.scaleSelect);
      slot.appendChild(label);
    }

    ui.sceneFilter = $("scene-filter");
    ui.sceneFilter.addEventListener("input", filterScenes);
    ui.sceneSort = $("scene-sort");
    if (ui.sceneSort) {
      ui.sceneSort.appendChild(option("list", "list order"));
      ui.sceneSort.appendChild(option("worst", "worst first"));
      ui.sceneSort.appendChild(option("best", "best first"));
      ui.sceneSort.addEventListener("change", function () {
        state.sceneSort = ui.sceneSort.value;
        orderScenes();
      });
    }

    ui.sortMetric = $("sort-metric");
    ui.sortMetric.appendChild(option("table", "table order"));
    metrics.forEach(function (m) {
      ui.sortMetric.appendChild(option(m.name, m.label + (m.higher ? " (best first: highest)" : " (best first: lowest)")));
    });
    ui.sortMetric.addEventListener("change", function () { api.setSortMetric(ui.sortMetric.value); });

    ui.methodFilter = $("method-filter");
    ui.methodFilter.addEventListener("input", filterMethods);
    if ($("methods-default")) $("methods-default").addEventListener("click", function () { api.setMethods(defaultMethods(state.scale)); });
    if ($("methods-none")) $("methods-none").addEventListener("click", function () { api.setMethods([]); });
    if ($("methods-all")) $("methods-all").addEventListener("click", function () {
      api.setMethods(methods.map(function (m) { return m.name; }).filter(function (name) {
        return !methodItems[name].li.hidden;
      }));
    });

    MODES.forEach(function (mode) {
      var b = $("mode-" + mode);
      if (b) b.addEventListener("click", function () { api.setMode(mode); });
    });
    bindClick("zoom-in", function () { zoomBy(ZOOM_STEP); });
    bindClick("zoom-out", function () { zoomBy(1 / ZOOM_STEP); });
    bindClick("zoom-fit", function () { api.fit(); });
    bindClick("zoom-1", function () { zoomTo(1); });
    bindClick("scene-prev", function () { stepScene(-1); });
    bindClick("scene-next", function () { stepScene(1); });
    ui.zoomReadout = $("zoom-readout");
    ui.cursorReadout = $("cursor-readout");
    ui.sceneTitle = $("scene-title");

    var size = $("panel-size");
    if (size) size.addEventListener("input", function () {
      ui.panels.style.setProperty("--panel-width", size.value + "px");
      applyView();
    });

    // A/B controls
    ui.abLeft = $("ab-left");
    ui.abRight = $("ab-right");
    ui.abLeft.addEventListener("change", function () { api.setAB(ui.abLeft.value, null); });
    ui.abRight.addEventListener("change", function () { api.setAB(null, ui.abRight.value); });
    bindClick("ab-swap", swapSides);

    // error controls
    ui.errorTarget = $("error-target");
    ui.errorAgainst = $("error-against");
    ui.errorGain = $("error-gain");
    GAINS.forEach(function (g) { ui.errorGain.appendChild(option(String(g), "\u00d7" + g)); });
    ui.errorTarget.addEventListener("change", function () { api.setError(ui.errorTarget.value, null, null); });
    ui.errorAgainst.addEventListener("change", function () { api.setError(null, ui.errorAgainst.value, null); });
    ui.errorGain.addEventListener("change", function () { api.setError(null, null, parseInt(ui.errorGain.value, 10)); });
    bindClick("error-swap", swapSides);

    // collapsible sections (narrow screens)
    Array.prototype.forEach.call(doc.querySelectorAll("[data-collapse]"), function (button) {
      button.addEventListener("click", function () {
        var section = $(button.getAttribute("data-collapse"));
        var collapsed = section.classList.toggle("collapsed");
        button.setAttribute("aria-expanded", collapsed ? "false" : "true");
      });
    });

    buildFilters();
  }

  function bindClick(id, handler) {
    var node = $(id);
    if (node) node.addEventListener("click", handler);
  }

  /* The SVG filters of the error map, one per gain: mean(|dR|,|dG|,|dB|) x gain into every channel, then the
   * colour map as lookup tables. sRGB interpolation: the filter sees the 8-bit levels as they are. */
  function buildFilters() {
    var NS = "http://www.w3.org/2000/svg";
    var svg = doc.createElementNS(NS, "svg");
    svg.setAttribute("id", "error-filters");
    svg.setAttribute("width", "0");
    svg.setAttribute("height", "0");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    svg.style.position = "absolute";
    svg.style.width = "0";
    svg.style.height = "0";
    svg.style.overflow = "hidden";
    var defs = doc.createElementNS(NS, "defs");
    svg.appendChild(defs);
    var tables = [0, 1, 2].map(function (c) {
      return COLORS.map(function (rgb) { return (rgb[c] / 255).toFixed(5); }).join(" ");
    });
    GAINS.forEach(function (gain) {
      var filter = doc.createElementNS(NS, "filter");
      filter.setAttribute("id", "error-filter-" + gain);
      filter.setAttribute("color-interpolation-filters", "sRGB");
      filter.setAttribute("x", "0");
      filter.setAttribute("y", "0");
      filter.setAttribute("width", "1");
      filter.setAttribute("height", "1");
      var k = (gain / 3).toFixed(7);
      var row = k + " " + k + " " + k + " 0 0";
      var matrix = doc.createElementNS(NS, "feColorMatrix");
      matrix.setAttribute("type", "matrix");
      matrix.setAttribute("values", [row, row, row, "0 0 0 1 0"].join("  "));
      matrix.setAttribute("color-interpolation-filters", "sRGB");
      filter.appendChild(matrix);
      var transfer = doc.createElementNS(NS, "feComponentTransfer");
      transfer.setAttribute("color-interpolation-filters", "sRGB");
      ["feFuncR", "feFuncG", "feFuncB"].forEach(function (tag, c) {
        var func = doc.createElementNS(NS, tag);
        func.setAttribute("type", "table");
        func.setAttribute("tableValues", tables[c]);
        transfer.appendChild(func);
      });
      filter.appendChild(transfer);
      defs.appendChild(filter);
    });
    body.insertBefore(svg, body.firstChild);
  }

  /* ---------- scene list ---------- */

  var sceneItems = dict();   // name -> {li, scores, scene}
  var sceneOrder = [];   // names, display order

  function sceneThumb(scene) {
    var t = scene.input_thumbs || {};
    return t.gt || t.over || t.under || (scene.inputs && (scene.inputs.gt || scene.inputs.over)) || null;
  }

  /* A thumbnail <img> that loads only when scrolled near (its src is set by the caller). */
  function lazyThumb(cls, width, height) {
    var img = el("img", cls);
    img.loading = "lazy";
    img.decoding = "async";
    img.alt = "";
    img.width = width;
    img.height = height;
    return img;
  }

  function buildSceneList() {
    var t0 = performance.now();
    var list = scenesOf(state.scale);
    var frag = doc.createDocumentFragment();
    sceneItems = dict();
    list.forEach(function (scene) {
      if (!scene || scene.name in sceneItems) return;
      var li = el("li", "scene-item");
      li.dataset.scene = scene.name;
      li.title = scene.name;
      var src = sceneThumb(scene);
      if (src) {
        var img = lazyThumb("scene-thumb", 48, 36);
        img.src = src;
        li.appendChild(img);
      } else {
        li.appendChild(el("span", "scene-thumb none", "no image"));
      }
      var text = el("span", "scene-text");
      text.appendChild(el("span", "scene-name", scene.name));
      var scores = el("span", "scene-scores");
      text.appendChild(scores);
      li.appendChild(text);
      frag.appendChild(li);
      sceneItems[scene.name] = { li: li, scores: scores, scene: scene };
    });
    ui.sceneList.textContent = "";
    ui.sceneList.appendChild(frag);
    sceneScoresKey = null;   // new items: their scores are still to be written
    sceneOrder = Object.keys(sceneItems);
    var count = $("scene-count");
    if (count) count.textContent = "(" + sceneOrder.length + ")";
    if (ui.scaleSelect) ui.scaleSelect.value = String(state.scale);
    updateSceneScores();
    orderScenes();
    filterScenes();
    timings.sceneList = performance.now() - t0;
  }

  function sortMetricOrFirst() { return metricByName[state.sortMetric] || metrics[0] || null; }

  /* The per-scene score of the sort metric (or the first metric) for the first shown methods. */
  var sceneScoresKey = null;   // what the scene list's scores show now: they depend on the methods and metric only
  function updateSceneScores() {
    var metric = sortMetricOrFirst();
    var names = shownInOrder();
    var key = JSON.stringify([state.scale, metric && metric.name, names, sceneOrder.length]);
    if (key === sceneScoresKey) return;
    sceneScoresKey = key;
    var extra = names.length > SCENE_SCORES_MAX ? names.length - SCENE_SCORES_MAX : 0;
    names = names.slice(0, SCENE_SCORES_MAX);
    var heading = $("scene-scores-heading");
    if (heading) heading.textContent = metric && names.length ? metric.label + " of " + names.join(", ") + (extra ? " (+" + extra + ")" : "") : "";
    sceneOrder.forEach(function (name) {
      var item = sceneItems[name];
      var box = item.scores;
      box.textContent = "";
      if (!metric || !names.length) return;
      var values = names.map(function (m) { return score(item.scene, m, metric.name); });
      var best = null;
      values.forEach(function (v) {
        if (v !== null && (best === null || (metric.higher ? v > best : v < best))) best = v;
      });
      values.forEach(function (v, i) {
        var span = el("span", "score" + (v !== null && v === best && names.length > 1 ? " best" : ""), fmt(metric, v, false));
        span.dataset.method = names[i];
        span.title = names[i] + ": " + metric.label + " " + fmt(metric, v, true);
        box.appendChild(span);
      });
      if (extra) box.appendChild(el("span", "score more", "+" + extra));
    });
    updateSceneSortLabels();
  }

  function sceneSortKeyMethod() {
    var names = shownInOrder();
    if (reference && state.methods.indexOf(reference) >= 0) return reference;
    return names[0] || reference || (methods[0] && methods[0].name) || null;
  }

  function updateSceneSortLabels() {
    if (!ui.sceneSort) return;
    var metric = sortMetricOrFirst(), method = sceneSortKeyMethod();
    var what = metric && method ? metric.label + " of " + method : "score";
    ui.sceneSort.options[1].textContent = "worst " + what + " first";
    ui.sceneSort.options[2].textContent = "best " + what + " first";
  }

  function orderScenes() {
    var names = scenesOf(state.scale).map(function (s) { return s.name; }).filter(function (n, i, all) {
      return sceneItems[n] && sceneItems[n].scene === scenesOf(state.scale)[i];
    });
    var metric = sortMetricOrFirst(), method = sceneSortKeyMethod();
    if (state.sceneSort !== "list" && metric && method) {
      var keyed = names.map(function (n, i) { return { name: n, i: i, v: score(sceneItems[n].scene, method, metric.name) }; });
      keyed.sort(betterFirst(metric));
      if (state.sceneSort === "worst") {
        var present = keyed.filter(function (o) { return o.v !== null; }).reverse();
        keyed = present.concat(keyed.filter(function (o) { return o.v === null; }));
      }
      names = keyed.map(function (o) { return o.name; });
    }
    var same = names.length === sceneOrder.length && names.every(function (n, i) { return n === sceneOrder[i]; });
    sceneOrder = names;
    if (same && ui.sceneList.children.length === names.length) return;
    var frag = doc.createDocumentFragment();
    names.forEach(function (n) { frag.appendChild(sceneItems[n].li); });
    ui.sceneList.appendChild(frag);
    revealScene();
  }

  function filterScenes() {
    var needle = ui.sceneFilter.value.trim().toLowerCase();
    var visible = 0;
    sceneOrder.forEach(function (name) {
      var hide = needle !== "" && name.toLowerCase().indexOf(needle) < 0;
      var item = sceneItems[name].li;
      if (item.hidden !== hide) item.hidden = hide;
      if (!hide) visible++;
    });
    var count = $("scene-count");
    if (count) count.textContent = needle ? "(" + visible + " of " + sceneOrder.length + ")" : "(" + sceneOrder.length + ")";
  }

  var selectedItem = null;
  function markSelectedScene() {
    if (selectedItem) selectedItem.classList.remove("selected");
    var item = state.scene !== null && sceneItems[state.scene];
    selectedItem = item ? item.li : null;
    if (selectedItem) {
      selectedItem.classList.add("selected");
      selectedItem.setAttribute("aria-selected", "true");
    }
    Array.prototype.forEach.call(ui.sceneList.querySelectorAll('[aria-selected="true"]'), function (node) {
      if (node !== selectedItem) node.removeAttribute("aria-selected");
    });
    revealScene();
  }

  /* Scroll the scene list (not the page) so that the selected scene is visible. */
  function revealScene() {
    var li = selectedItem, list = ui.sceneList;
    if (!li || li.hidden || !list.clientHeight) return;
    var horizontal = list.scrollWidth > list.clientWidth + 1 && list.scrollHeight <= list.clientHeight + 1;
    if (horizontal) {
      if (li.offsetLeft < list.scrollLeft) list.scrollLeft = li.offsetLeft;
      else if (li.offsetLeft + li.offsetWidth > list.scrollLeft + list.clientWidth) list.scrollLeft = li.offsetLeft + li.offsetWidth - list.clientWidth;
    } else {
      if (li.offsetTop < list.scrollTop) list.scrollTop = li.offsetTop;
      else if (li.offsetTop + li.offsetHeight > list.scrollTop + list.clientHeight) list.scrollTop = li.offsetTop + li.offsetHeight - list.clientHeight;
    }
  }

  function visibleSceneNames() {
    return sceneOrder.filter(function (n) { return !sceneItems[n].li.hidden; });
  }

  function stepScene(delta) {
    var names = visibleSceneNames();
    if (!names.length) return;
    var i = names.indexOf(state.scene);
    var next = i < 0 ? (delta > 0 ? 0 : names.length - 1) : clamp(i + delta, 0, names.length - 1);
    if (names[next] !== state.scene) api.setScene(names[next]);
  }

  /* ---------- method list ---------- */

  var methodItems = dict();  // name -> {li, box, values: {metric: span}, missing, thumb}

  function buildMethodList() {
    var t0 = performance.now();
    var frag = doc.createDocumentFragment();
    methods.forEach(function (m) {
      var li = el("li", "method-item" + (m.name === reference ? " reference" : ""));
      li.dataset.method = m.name;
      var thumb = lazyThumb("method-thumb", 40, 30);
      li.appendChild(thumb);
      var main = el("div", "method-main");
      li.appendChild(main);
      var label = el("label", "method-check");
      var box = el("input");
      box.type = "checkbox";
      box.value = m.name;
      label.appendChild(box);
      label.appendChild(el("span", "method-name", m.name));
      if (m.name === reference) label.appendChild(el("span", "badge", "reference"));
      var missing = el("span", "badge missing", "no image");
      missing.hidden = true;
      label.appendChild(missing);
      main.appendChild(label);
      if (m.order) li.title = m.name + " (" + m.order + (m.components.length ? ": " + m.components.join(", ") : "") + ")";
      var scores = el("span", "method-scores");
      var values = dict();
      metrics.forEach(function (metric, i) {
        if (i) scores.appendChild(doc.createTextNode(" \u00b7 "));
        var part = el("span", "metric-value");
        part.dataset.metric = metric.name;
        part.appendChild(el("span", "metric-label", metric.label + " "));
        var value = el("span", "value", MISSING);
        part.appendChild(value);
        scores.appendChild(part);
        values[metric.name] = { part: part, value: value };
      });
      main.appendChild(scores);
      frag.appendChild(li);
      methodItems[m.name] = { li: li, box: box, values: values, missing: missing, thumb: thumb };
    });
    ui.methodList.textContent = "";
    ui.methodList.appendChild(frag);
    ui.methodList.addEventListener("change", function (e) {
      var box = e.target;
      if (!box || box.type !== "checkbox") return;
      var name = box.value;
      var next = state.methods.filter(function (n) { return n !== name; });
      if (box.checked) next.push(name);
      api.setMethods(next);
    });
    timings.methodList = performance.now() - t0;
  }

  /* Scores of the current scene, the checkboxes, the sort order. */
  function updateMethodList() {
    var scene = currentScene();
    var on = dict();
    state.methods.forEach(function (m) { on[m] = true; });
    var best = dict();
    metrics.forEach(function (metric) {
      var b = null;
      methods.forEach(function (m) {
        var v = score(scene, m.name, metric.name);
        if (v !== null && (b === null || (metric.higher ? v > b : v < b))) b = v;
      });
      best[metric.name] = b;
    });
    methods.forEach(function (m) {
      var item = methodItems[m.name];
      if (item.box.checked !== !!on[m.name]) item.box.checked = !!on[m.name];
      item.li.classList.toggle("shown", !!on[m.name]);
      var noImage = !!scene && !imageOf(scene, m.name);
      if (item.missing.hidden === noImage) item.missing.hidden = !noImage;
      item.li.classList.toggle("no-image", noImage);
      var thumb = scene ? own(scene.thumbs, m.name) : null;
      thumb = typeof thumb === "string" && thumb ? thumb : null;
      if (thumb && item.thumb.getAttribute("src") !== thumb) item.thumb.src = thumb;
      else if (!thumb && item.thumb.hasAttribute("src")) item.thumb.removeAttribute("src");
      item.thumb.classList.toggle("none", !thumb);
      metrics.forEach(function (metric) {
        var v = score(scene, m.name, metric.name);
        var slot = item.values[metric.name];
        slot.value.textContent = fmt(metric, v, true);
        slot.part.classList.toggle("best", v !== null && v === best[metric.name]);
        slot.part.classList.toggle("sort-key", metric.name === state.sortMetric);
      });
    });
    var order = displayOrder();
    var current = Array.prototype.map.call(ui.methodList.children, function (li) { return li.dataset.method; });
    if (order.join("\u0000") !== current.join("\u0000")) {
      var frag = doc.createDocumentFragment();
      order.forEach(function (name) { frag.appendChild(methodItems[name].li); });
      ui.methodList.appendChild(frag);
    }
    if (ui.sortMetric.value !== state.sortMetric) ui.sortMetric.value = state.sortMetric;
    var count = $("method-count");
    if (count) count.textContent = "(" + state.methods.length + " of " + methods.length + " shown)";
  }

  function filterMethods() {
    var needle = ui.methodFilter.value.trim().toLowerCase();
    methods.forEach(function (m) {
      var hay = (m.name + " " + m.order + " " + m.components.join(" ")).toLowerCase();
      var hide = needle !== "" && hay.indexOf(needle) < 0;
      var li = methodItems[m.name].li;
      if (li.hidden !== hide) li.hidden = hide;
    });
  }

  /* ---------- the views ---------- */

  var viewports = [];    // [{vp, contents: [..]}] of the active view
  var timings = {};
  var loadToken = 0;

  function scoreLine(scene, method) {
    return metrics.map(function (metric) { return metric.label + " " + fmt(metric, score(scene, method, metric.name), true); })
      .join(" \u00b7 ");
  }

  function roleCaption(scene, role) {
    var size = sizeOf(scene);
    if (role === "gt") return "HR " + size.w + "\u00d7" + size.h;
    var lr = Array.isArray(scene.lr_size) ? scene.lr_size : null;
    var text = lr ? "LR " + lr[1] + "\u00d7" + lr[0] : "LR";
    if (lr && lr[1] > 0) text += ", shown \u00d7" + round(size.w / lr[1], 2) + " (nearest)";
    return text;
  }

  function makeLabel(scene, role, cls) {
    var label = el("div", "panel-label" + (cls ? " " + cls : ""));
    label.appendChild(el("span", "panel-name", roleName(role)));
    if (isInputRole(role)) {
      label.appendChild(el("span", "panel-scores muted", roleCaption(scene, role)));
    } else {
      var scores = el("span", "panel-scores");
      metrics.forEach(function (metric, i) {
        if (i) scores.appendChild(doc.createTextNode(" \u00b7 "));
        var part = el("span", "metric-value", metric.label + " " + fmt(metric, score(scene, role, metric.name), true));
        part.dataset.metric = metric.name;
        scores.appendChild(part);
      });
      label.appendChild(scores);
      if (role === reference) label.classList.add("reference");
    }
    return label;
  }

  function makeViewport(scene, cls) {
    var size = sizeOf(scene);
    var vp = el("div", "panel-viewport" + (cls ? " " + cls : ""));
    vp.style.aspectRatio = size.w + " / " + size.h;
    vp.style.setProperty("--aspect", size.w + " / " + size.h);
    return vp;
  }

  function makeContent(scene) {
    var size = sizeOf(scene);
    var content = el("div", "panel-content");
    content.style.width = size.w + "px";
    content.style.height = size.h + "px";
    return content;
  }

  function makeImage(scene, role, imgs) {
    var src = imageOf(scene, role);
    if (!src) return el("div", "panel-missing", "no image for this scene");
    var size = sizeOf(scene);
    var img = el("img", "panel-image" + (isInputRole(role) && role !== "gt" ? " lr" : ""));
    img.decoding = "async";
    img.draggable = false;
    img.alt = roleName(role) + ", scene " + scene.name;
    img.width = size.w;
    img.height = size.h;
    img.dataset.role = role;
    img.src = src;
    imgs.push(img);
    return img;
  }

  function renderSide(scene, imgs) {
    var frag = doc.createDocumentFragment();
    var roles = INPUT_ROLES.filter(function (r) { return imageOf(scene, r); });
    roles = roles.concat(shownInOrder());
    roles.forEach(function (role) {
      var panel = el("div", "panel");
      panel.dataset.role = isInputRole(role) ? role : "method";
      if (!isInputRole(role)) panel.dataset.method = role;
      if (role === reference) panel.classList.add("reference");
      panel.appendChild(makeLabel(scene, role));
      var vp = makeViewport(scene);
      var content = makeContent(scene);
      var image = makeImage(scene, role, imgs);
      (image.tagName === "IMG" ? content : vp).appendChild(image);
      vp.appendChild(content);
      panel.appendChild(vp);
      frag.appendChild(panel);
      viewports.push({ vp: vp, contents: [content] });
    });
    if (!roles.length) frag.appendChild(el("p", "muted empty", "Nothing to show: choose methods in the list."));
    ui.panels.appendChild(frag);
  }

  /* The choices of the A/B and error selects: inputs first, then every method (disabled without an image). */
  function fillSelect(select, scene, roles, withMethods) {
    select.textContent = "";
    roles.forEach(function (role) {
      select.appendChild(option(role, roleName(role) + (imageOf(scene, role) ? "" : " (none)"), !imageOf(scene, role)));
    });
    if (withMethods) {
      var group = el("optgroup");
      group.label = "methods";
      methods.forEach(function (m) {
        group.appendChild(option(m.name, m.name + (imageOf(scene, m.name) ? "" : " (no image)"), !imageOf(scene, m.name)));
      });
      select.appendChild(group);
    }
  }

  function firstWithImage(scene, candidates, except) {
    for (var i = 0; i < candidates.length; i++) {
      var c = candidates[i];
      if (c && c !== except && imageOf(scene, c)) return c;
    }
    return null;
  }

  function allMethodNames() { return methods.map(function (m) { return m.name; }); }

  function resolveAB(scene) {
    var order = shownInOrder();
    var left = imageOf(scene, state.abLeft) ? state.abLeft : firstWithImage(scene, [reference].concat(order, allMethodNames(), ["gt"]));
    var right = imageOf(scene, state.abRight) ? state.abRight
      : firstWithImage(scene, order.concat(["gt"], allMethodNames(), ["over", "under"]), left);
    shown.abLeft = left;
    shown.abRight = right || left;
  }

  function renderAB(scene, imgs) {
    resolveAB(scene);
    fillSelect(ui.abLeft, scene, INPUT_ROLES, true);
    fillSelect(ui.abRight, scene, INPUT_ROLES, true);
    ui.abLeft.value = shown.abLeft || "";
    ui.abRight.value = shown.abRight || "";
    var labels = $("ab-labels");
    labels.textContent = "";
    if (shown.abLeft) labels.appendChild(makeLabel(scene, shown.abLeft, "ab-label-left"));
    if (shown.abRight) labels.appendChild(makeLabel(scene, shown.abRight, "ab-label-right"));
    var stage = $("ab-stage");
    stage.textContent = "";
    if (!shown.abLeft) { stage.appendChild(el("p", "muted empty", "No image to compare in this scene.")); return; }
    var vp = makeViewport(scene, "ab-viewport");
    var left = makeContent(scene);
    left.classList.add("ab-left-content");
    left.appendChild(makeImage(scene, shown.abLeft, imgs));
    var clip = el("div", "ab-clip");
    var right = makeContent(scene);
    right.classList.add("ab-right-content");
    right.appendChild(makeImage(scene, shown.abRight, imgs));
    clip.appendChild(right);
    var divider = el("div", "ab-divider");
    divider.setAttribute("role", "slider");
    divider.setAttribute("aria-label", "A/B divider");
    divider.setAttribute("aria-valuemin", "0");
    divider.setAttribute("aria-valuemax", "100");
    divider.tabIndex = 0;
    divider.appendChild(el("span", "ab-handle"));
    vp.appendChild(left);
    vp.appendChild(clip);
    vp.appendChild(divider);
    vp.appendChild(el("span", "ab-tag ab-tag-left", "A"));
    vp.appendChild(el("span", "ab-tag ab-tag-right", "B"));
    stage.appendChild(vp);
    ui.abClip = clip;
    ui.abDivider = divider;
    viewports.push({ vp: vp, contents: [left, right] });
    applyDivider();
  }

  function applyDivider() {
    var p = clamp(state.divider, 0, 1);
    if (ui.abClip) ui.abClip.style.clipPath = "inset(0 0 0 " + round(p * 100, 3) + "%)";
    if (ui.abDivider) {
      ui.abDivider.style.left = round(p * 100, 3) + "%";
      ui.abDivider.dataset.position = String(round(p, 4));
      ui.abDivider.setAttribute("aria-valuenow", String(Math.round(p * 100)));
    }
  }

  function resolveError(scene) {
    var order = shownInOrder();
    var target = imageOf(scene, state.errorTarget) && !isInputRole(state.errorTarget) ? state.errorTarget
      : firstWithImage(scene, [reference].concat(order, allMethodNames()));
    var against = state.errorAgainst;
    if (!(against === "gt" || against in methodIndex) || !imageOf(scene, against)) {
      against = imageOf(scene, "gt") ? "gt"
        : firstWithImage(scene, order.concat(allMethodNames()), target) || target;
    }
    shown.errorTarget = target;
    shown.errorAgainst = target ? against : null;
  }

  function renderError(scene, imgs) {
    resolveError(scene);
    fillSelect(ui.errorTarget, scene, [], true);
    fillSelect(ui.errorAgainst, scene, ["gt"], true);
    ui.errorTarget.value = shown.errorTarget || "";
    ui.errorAgainst.value = shown.errorAgainst || "";
    ui.errorGain.value = String(state.gain);
    var labels = $("error-labels");
    labels.textContent = "";
    var stage = $("error-stage");
    stage.textContent = "";
    buildLegend();
    if (!shown.errorTarget) { stage.appendChild(el("p", "muted empty", "No method image in this scene.")); return; }
    var caption = el("div", "panel-label error-caption");
    caption.appendChild(el("span", "panel-name",
      "|" + roleName(shown.errorTarget) + " \u2212 " + roleName(shown.errorAgainst) + "|"));
    caption.appendChild(el("span", "panel-scores muted",
      "mean of |\u0394R|, |\u0394G|, |\u0394B| per pixel, gain \u00d7" + state.gain));
    labels.appendChild(caption);
    labels.appendChild(makeLabel(scene, shown.errorTarget, "error-label-target"));
    if (shown.errorAgainst !== "gt") labels.appendChild(makeLabel(scene, shown.errorAgainst, "error-label-against"));
    var vp = makeViewport(scene, "error-viewport");
    var stack = el("div", "error-stack");
    stack.style.filter = "url(#error-filter-" + state.gain + ")";
    var content = makeContent(scene);
    var base = makeImage(scene, shown.errorAgainst, imgs);
    var top = makeImage(scene, shown.errorTarget, imgs);
    base.classList.add("error-against");
    top.classList.add("error-target");
    content.appendChild(base);
    content.appendChild(top);
    stack.appendChild(content);
    vp.appendChild(stack);
    stage.appendChild(vp);
    viewports.push({ vp: vp, contents: [content], stack: stack });
  }

  function buildLegend() {
    var legend = $("error-scale");
    if (!legend || legend.dataset.gain === String(state.gain)) return;
    legend.dataset.gain = String(state.gain);
    legend.textContent = "";
    var max = 255 / state.gain;
    var bar = el("div", "error-scale-bar");
    bar.style.backgroundImage = "linear-gradient(to right, " + COLORS.map(function (c, i) {
      return "rgb(" + c.join(",") + ") " + round(100 * i / (COLORS.length - 1), 3) + "%";
    }).join(", ") + ")";
    legend.appendChild(bar);
    var ticks = el("div", "error-scale-ticks");
    var step = { 1: 64, 4: 16, 16: 4 }[state.gain] || max / 4;
    var values = [];
    for (var v = 0; v < max - step * 0.25; v += step) values.push(v);
    values.push(max);
    values.forEach(function (v, i) {
      var last = i === values.length - 1;
      var tick = el("span", "tick" + (last ? " last" : ""), last ? (state.gain === 1 ? "255" : "\u2265" + round(max, 2)) : String(v));
      tick.style.left = round(100 * v / max, 3) + "%";
      ticks.appendChild(tick);
    });
    legend.appendChild(ticks);
    legend.appendChild(el("div", "error-scale-caption",
      "mean absolute difference in 8-bit levels (0\u2013255), gain \u00d7" + state.gain +
      (state.gain > 1 ? ": " + round(max, 2) + " and above saturate" : "")));
  }

  /* Rebuild the active view for the current scene/mode/methods; load only its images. */
  function renderView() {
    var scene = currentScene();
    viewports = [];
    ui.abClip = ui.abDivider = null;
    ui.panels.textContent = "";
    $("ab-stage").textContent = "";
    $("error-stage").textContent = "";
    ui.panels.hidden = state.mode !== "side";
    ui.abView.hidden = state.mode !== "ab";
    ui.errorView.hidden = state.mode !== "error";
    MODES.forEach(function (mode) {
      var b = $("mode-" + mode);
      if (!b) return;
      b.classList.toggle("active", mode === state.mode);
      b.setAttribute("aria-pressed", mode === state.mode ? "true" : "false");
    });
    body.dataset.mode = state.mode;
    var imgs = [];
    if (!scene) {
      ui.panels.hidden = false;
      ui.panels.appendChild(el("p", "muted empty", "No scenes at this scale."));
    } else if (state.mode === "side") {
      renderSide(scene, imgs);
    } else if (state.mode === "ab") {
      renderAB(scene, imgs);
    } else {
      renderError(scene, imgs);
    }
    if (ui.sceneTitle) {
      ui.sceneTitle.textContent = scene ? scene.name : MISSING;
      ui.sceneTitle.title = scene ? "scene " + scene.name + " at \u00d7" + state.scale : "";
    }
    applyView();
    trackImages(imgs);
  }

  function trackImages(imgs) {
    var token = ++loadToken;
    var left = 0;
    body.dataset.viewLoaded = "0";
    function done() {
      if (token !== loadToken) return;
      left -= 1;
      if (left === 0) finished();
    }
    function finished() {
      if (token !== loadToken) return;
      body.dataset.viewLoaded = "1";
      applyView();
      body.dataset.viewerReady = "1";
    }
    imgs.forEach(function (img) {
      if (img.complete) return;
      left += 1;
      img.addEventListener("load", done);
      img.addEventListener("error", function () { img.classList.add("broken"); done(); });
    });
    if (left === 0) finished();
  }

  /* ---------- zoom and pan ---------- */

  function viewportSize(vp) { return { w: vp.clientWidth, h: vp.clientHeight }; }

  function fitZoom() {
    var size = sizeOf(currentScene());
    var z = null;
    viewports.forEach(function (v) {
      var s = viewportSize(v.vp);
      if (!s.w || !s.h) return;
      var f = Math.min(s.w / size.w, s.h / size.h);
      z = z === null ? f : Math.min(z, f);
    });
    return z || 1;
  }

  function clampPan() {
    var size = sizeOf(currentScene());
    state.x = clamp(isNumber(state.x) ? state.x : size.w / 2, 0, size.w);
    state.y = clamp(isNumber(state.y) ? state.y : size.h / 2, 0, size.h);
  }

  /* Write the shared transform into every panel: the image point (x, y) at the viewport's centre. */
  function applyView() {
    var size = sizeOf(currentScene());
    var sizes = viewports.map(function (v) { return viewportSize(v.vp); });  // all reads first
    if (state.fitted) {
      state.zoom = fitZoom();
      state.x = size.w / 2;
      state.y = size.h / 2;
    }
    clampPan();
    var z = state.zoom;
    var dpr = window.devicePixelRatio || 1;
    var snap = function (v) { return Math.round(v * dpr) / dpr; };  // image edges on device pixels
    viewports.forEach(function (v, i) {
      var s = sizes[i];
      var tx = snap(s.w / 2 - state.x * z), ty = snap(s.h / 2 - state.y * z);
      var transform = "translate(" + round(tx, 4) + "px, " + round(ty, 4) + "px) scale(" + round(z, 6) + ")";
      v.contents.forEach(function (c) { c.style.transform = transform; });
      if (v.stack) {
        // cut off the screen pixels the image covers only in part: there the blend of two partly
        // transparent edges is no difference of the images
        var right = Math.floor((tx + size.w * z) * dpr) / dpr, bottom = Math.floor((ty + size.h * z) * dpr) / dpr;
        v.stack.style.clipPath = "inset(" + [Math.max(0, ty), Math.max(0, s.w - right), Math.max(0, s.h - bottom),
          Math.max(0, tx)].map(function (d) { return round(d, 4) + "px"; }).join(" ") + ")";
      }
    });
    var pixelated = z >= PIXELATED_AT;
    [ui.panels, ui.abView, ui.errorView].forEach(function (node) { node.classList.toggle("pixelated", pixelated); });
    if (ui.zoomReadout) ui.zoomReadout.textContent = (z >= 10 ? round(z, 1) : round(z, 2)) + "\u00d7" + (state.fitted ? " (fit)" : "");
  }

  function setZoomAbout(z, vp, px, py, interactive) {
    var s = vp ? viewportSize(vp) : null;
    if (!s || !s.w) { px = py = 0; s = { w: 0, h: 0 }; }
    var fit = fitZoom();
    var lo = interactive ? fit : 0.01;
    var old = state.zoom;
    z = clamp(z, Math.min(lo, MAX_ZOOM), MAX_ZOOM);
    if (interactive && z <= fit * 1.0001) {
      state.fitted = true;
    } else {
      var ix = state.x + (px - s.w / 2) / old, iy = state.y + (py - s.h / 2) / old;
      state.fitted = false;
      state.zoom = z;
      state.x = ix - (px - s.w / 2) / z;
      state.y = iy - (py - s.h / 2) / z;
    }
    applyView();
  }

  function centreOf(vp) { var s = viewportSize(vp); return [s.w / 2, s.h / 2]; }

  function zoomBy(factor) {
    var vp = viewports.length ? viewports[0].vp : null;
    var c = vp ? centreOf(vp) : [0, 0];
    setZoomAbout(state.zoom * factor, vp, c[0], c[1], true);
    commit(false);
  }

  function zoomTo(z) {
    var vp = viewports.length ? viewports[0].vp : null;
    var c = vp ? centreOf(vp) : [0, 0];
    state.fitted = false;
    setZoomAbout(z, vp, c[0], c[1], false);
    commit(false);
  }

  function panBy(dx, dy) {  // screen pixels
    if (state.fitted) { state.fitted = false; }
    state.x -= dx / state.zoom;
    state.y -= dy / state.zoom;
    applyView();
  }

  /* ---------- pointer, wheel, keyboard ---------- */

  var pointers = dict();

  function viewportAt(target) { return target && target.closest ? target.closest(".panel-viewport") : null; }

  function localPoint(vp, e) {
    var r = vp.getBoundingClientRect();
    return [e.clientX - r.left - vp.clientLeft, e.clientY - r.top - vp.clientTop];
  }

  function setupInteraction() {
    var views = ui.views;

    views.addEventListener("wheel", function (e) {
      var vp = viewportAt(e.target);
      if (!vp) return;
      e.preventDefault();
      var dy = e.deltaY;
      if (e.deltaMode === 1) dy *= 16; else if (e.deltaMode === 2) dy *= 400;
      var p = localPoint(vp, e);
      setZoomAbout(state.zoom * Math.exp(-dy * 0.002), vp, p[0], p[1], true);
      commit(true);
    }, { passive: false });

    views.addEventListener("dblclick", function (e) {
      var vp = viewportAt(e.target);
      if (!vp || (e.target.closest && e.target.closest(".ab-divider"))) return;
      var p = localPoint(vp, e);
      setZoomAbout(state.zoom * (e.shiftKey ? 1 / ZOOM_STEP : ZOOM_STEP), vp, p[0], p[1], true);
      commit(false);
    });

    views.addEventListener("pointerdown", function (e) {
      var vp = viewportAt(e.target);
      if (!vp) return;
      if (e.pointerType === "mouse" && e.button !== 0) return;
      e.preventDefault();
      var divider = e.target.closest(".ab-divider");
      pointers[e.pointerId] = { x: e.clientX, y: e.clientY, vp: vp, divider: !!divider };
      try { (divider || vp).setPointerCapture(e.pointerId); } catch (err) { /* synthetic events */ }
      if (divider) { divider.focus({ preventScroll: true }); moveDivider(vp, e.clientX); }
      else vp.classList.add("dragging");
    });

    views.addEventListener("pointermove", function (e) {
      var vp = viewportAt(e.target);
      var p0 = pointers[e.pointerId];
      if (vp && !p0) showCursor(vp, e);
      if (!p0) return;
      if (p0.divider) { moveDivider(p0.vp, e.clientX); return; }
      var ids = Object.keys(pointers).filter(function (id) { return !pointers[id].divider; });
      if (ids.length >= 2) {  // pinch: zoom by the change of distance about the midpoint, pan with it
        var other = pointers[ids[0] === String(e.pointerId) ? ids[1] : ids[0]];
        var before = Math.hypot(p0.x - other.x, p0.y - other.y);
        var after = Math.hypot(e.clientX - other.x, e.clientY - other.y);
        var r = p0.vp.getBoundingClientRect();
        var mx = (e.clientX + other.x) / 2 - r.left, my = (e.clientY + other.y) / 2 - r.top;
        if (before > 0 && after > 0) setZoomAbout(state.zoom * after / before, p0.vp, mx, my, true);
        panBy((e.clientX - p0.x) / 2, (e.clientY - p0.y) / 2);
      } else {
        panBy(e.clientX - p0.x, e.clientY - p0.y);
      }
      p0.x = e.clientX;
      p0.y = e.clientY;
      commit(true);
    });

    function release(e) {
      var p0 = pointers[e.pointerId];
      if (!p0) return;
      delete pointers[e.pointerId];
      if (!Object.keys(pointers).length) {
        Array.prototype.forEach.call(doc.querySelectorAll(".panel-viewport.dragging"), function (node) {
          node.classList.remove("dragging");
        });
        commit(false);
      }
    }
    views.addEventListener("pointerup", release);
    views.addEventListener("pointercancel", release);
    views.addEventListener("lostpointercapture", release);
    views.addEventListener("pointerleave", function (e) {
      if (!pointers[e.pointerId] && ui.cursorReadout) ui.cursorReadout.textContent = "";
    });

    views.addEventListener("keydown", function (e) {
      if (!e.target.classList || !e.target.classList.contains("ab-divider")) return;
      if (e.key === "ArrowLeft" || e.key === "ArrowRight") {
        e.preventDefault();
        e.stopPropagation();
        setDivider(state.divider + (e.key === "ArrowLeft" ? -1 : 1) * (e.shiftKey ? 0.05 : 0.01));
      }
    });

    doc.addEventListener("keydown", onKey);
    ui.sceneList.addEventListener("click", function (e) {
      var li = e.target.closest ? e.target.closest(".scene-item") : null;
      if (li) api.setScene(li.dataset.scene);
    });
    window.addEventListener("hashchange", function () {
      if (location.hash === buildHash()) return;
      applyHash(parseHash());
      renderAll();
    });
    if (window.ResizeObserver) {
      var pending = false;
      new ResizeObserver(function () {
        if (pending) return;
        pending = true;
        requestAnimationFrame(function () { pending = false; applyView(); });
      }).observe(ui.views);
    } else {
      window.addEventListener("resize", function () { applyView(); });
    }
  }

  function showCursor(vp, e) {
    if (!ui.cursorReadout) return;
    var s = viewportSize(vp), p = localPoint(vp, e), size = sizeOf(currentScene());
    var ix = Math.floor(state.x + (p[0] - s.w / 2) / state.zoom);
    var iy = Math.floor(state.y + (p[1] - s.h / 2) / state.zoom);
    ui.cursorReadout.textContent = ix >= 0 && iy >= 0 && ix < size.w && iy < size.h ? "pixel x " + ix + ", y " + iy : "";
  }

  function moveDivider(vp, clientX) {
    var r = vp.getBoundingClientRect();
    if (!r.width) return;
    setDivider((clientX - r.left) / r.width, true);
  }

  function setDivider(p, continuous) {
    state.divider = clamp(isNumber(p) ? p : 0.5, 0, 1);
    applyDivider();
    commit(!!continuous);
  }

  function swapSides() {
    if (state.mode === "ab") {
      api.setAB(shown.abRight, shown.abLeft);
    } else if (state.mode === "error" && shown.errorAgainst && shown.errorAgainst !== "gt") {
      api.setError(shown.errorAgainst, shown.errorTarget, null);
    }
  }

  function onKey(e) {
    if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) return;
    var t = e.target;
    var tag = t && t.tagName ? t.tagName.toLowerCase() : "";
    if (tag === "select" || tag === "textarea" || (t && t.isContentEditable)) return;
    if (tag === "input" && t.type !== "checkbox" && t.type !== "radio" && t.type !== "range" && t.type !== "button") return;
    if (tag === "input" && t.type === "range" && /^Arrow/.test(e.key)) return;
    var step = function () {
      var vp = viewports.length ? viewports[0].vp : null;
      var s = vp ? viewportSize(vp) : { w: 200, h: 200 };
      return [Math.max(16, s.w * 0.15), Math.max(16, s.h * 0.15)];
    };
    var handled = true;
    switch (e.key) {
      case "+": case "=": case "Add": zoomBy(ZOOM_STEP); break;
      case "-": case "_": case "Subtract": zoomBy(1 / ZOOM_STEP); break;
      case "0": api.fit(); break;
      case "[": stepScene(-1); break;
      case "]": stepScene(1); break;
      case "1": api.setMode("side"); break;
      case "2": api.setMode("ab"); break;
      case "3": api.setMode("error"); break;
      case "s": case "S": swapSides(); break;
      case "g": case "G":
        if (state.mode !== "error") { handled = false; break; }
        api.setError(null, null, GAINS[(GAINS.indexOf(state.gain) + 1) % GAINS.length]);
        break;
      case "?":
        var help = $("shortcuts");
        if (help) help.open = !help.open;
        break;
      case "ArrowLeft": case "ArrowRight": case "ArrowUp": case "ArrowDown":
        if (e.shiftKey && state.mode === "ab" && (e.key === "ArrowLeft" || e.key === "ArrowRight")) {
          setDivider(state.divider + (e.key === "ArrowLeft" ? -0.05 : 0.05));
          break;
        }
        var d = step(), k = e.shiftKey ? 3 : 1;
        var dx = e.key === "ArrowLeft" ? d[0] : e.key === "ArrowRight" ? -d[0] : 0;
        var dy = e.key === "ArrowUp" ? d[1] : e.key === "ArrowDown" ? -d[1] : 0;
        panBy(dx * k, dy * k);
        commit(false);
        break;
      default: handled = false;
    }
    if (handled) e.preventDefault();
  }

  /* ---------- putting it together ---------- */

  function renderAll() {
    if (ui.builtScale !== state.scale) {
      buildSceneList();
      ui.builtScale = state.scale;
    }
    updateMethodList();
    updateSceneScores();
    orderScenes();
    markSelectedScene();
    renderView();
    commit(false);
  }

  var api = {
    /* {scale, scene, methods, mode, zoom, x, y, divider, errorTarget, errorAgainst, gain, abLeft, abRight, ...} */
    state: function () {
      var scene = currentScene();
      if (scene) { resolveAB(scene); resolveError(scene); }
      return {
        scale: state.scale === null ? null : Number(state.scale), scene: state.scene, methods: state.methods.slice(),
        mode: state.mode, zoom: state.zoom, x: state.x, y: state.y, fitted: state.fitted, divider: state.divider,
        errorTarget: shown.errorTarget || state.errorTarget, errorAgainst: shown.errorAgainst || state.errorAgainst,
        gain: state.gain, abLeft: shown.abLeft || state.abLeft, abRight: shown.abRight || state.abRight,
        sortMetric: state.sortMetric, shownMethods: shownInOrder()
      };
    },
    setScene: function (name) {
      var next = findScene(state.scale, String(name));
      if (!next) return false;
      var before = sizeOf(currentScene()), after = sizeOf(next);
      state.scene = next.name;
      if (before.w !== after.w || before.h !== after.h) state.fitted = true;
      updateMethodList();
      updateSceneScores();
      if (state.sceneSort !== "list") orderScenes();
      markSelectedScene();
      renderView();
      commit(false);
      return true;
    },
    setScale: function (scale) {
      scale = String(scale);
      if (scales.indexOf(scale) < 0) return false;
      if (scale === state.scale) return true;
      var name = state.scene;
      state.scale = scale;
      state.scene = findScene(scale, name) ? name : firstSceneName(scale);
      state.fitted = true;
      renderAll();
      return true;
    },
    setMethods: function (list) {
      state.methods = canonicalMethods(Array.isArray(list) ? list : [list]);
      updateMethodList();
      updateSceneScores();
      if (state.sceneSort !== "list") orderScenes();
      renderView();
      commit(false);
      return state.methods.slice();
    },
    setMode: function (mode) {
      if (typeof mode === "number") mode = MODES[mode - 1];
      if (MODES.indexOf(mode) < 0) return false;
      if (mode !== state.mode) {
        state.mode = mode;
        renderView();
        commit(false);
      }
      return true;
    },
    /* zoom: screen pixels per image pixel (null or "fit": fit); x, y: the image point at the panels' centre. */
    setView: function (zoom, x, y) {
      if (zoom === null || zoom === undefined || zoom === "fit") {
        state.fitted = true;
      } else {
        var z = Number(zoom);
        if (!isNumber(z) || z <= 0) return false;
        if (state.fitted) applyView();
        state.fitted = false;
        state.zoom = clamp(z, 0.01, MAX_ZOOM);
        if (isNumber(Number(x)) && x !== null && x !== undefined) state.x = Number(x);
        if (isNumber(Number(y)) && y !== null && y !== undefined) state.y = Number(y);
      }
      applyView();
      commit(false);
      return true;
    },
    fit: function () { state.fitted = true; applyView(); commit(false); },
    setDivider: function (p) { setDivider(Number(p)); return state.divider; },
    setAB: function (left, right) {
      if (left) state.abLeft = String(left);
      if (right) state.abRight = String(right);
      if (state.mode === "ab") renderView();
      commit(false);
    },
    setError: function (target, against, gain) {
      if (target) state.errorTarget = String(target);
      if (against) state.errorAgainst = String(against);
      if (gain !== null && gain !== undefined && GAINS.indexOf(Number(gain)) >= 0) state.gain = Number(gain);
      if (state.mode === "error") renderView();
      commit(false);
    },
    setSortMetric: function (name) {
      state.sortMetric = typeof name === "string" && name in metricByName ? name : "table";
      updateMethodList();
      updateSceneScores();
      orderScenes();
      if (state.mode === "side") renderView();
      commit(false);
    },
    timings: timings,
    colormap: COLORS.map(function (c) { return c.slice(); })
  };
  window.viewer = api;

  var t0 = performance.now();
  setupHeader();
  setupControls();
  buildMethodList();
  applyHash(parseHash());
  if (ui.sceneSort) ui.sceneSort.value = state.sceneSort;
  setupInteraction();
  renderAll();
  timings.firstRender = performance.now() - t0;
})();
