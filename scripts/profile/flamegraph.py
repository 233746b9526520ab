#!/usr/bin/env python3
"""flamegraph.py - render folded stacks ("a;b;c COUNT" lines) as a self-contained SVG flame graph.

    flamegraph.py [--title T] [--width PX] [--min-width PX] FILE.folded > FILE.svg

Each box is a function; its width is the share of samples with that function on the stack
at that place; boxes above it are the functions it called. Open the SVG in a browser: hover
for counts, click a box to zoom into it, click the bottom bar (or press Esc) to zoom out,
Ctrl-F or the "Search" button to highlight functions matching a regular expression.
Colours: kernel (_[k]) orange, tasker's own functions (tk_*) blue, PostgreSQL green-ish,
labels ([thread], [role]) grey, everything else warm. Standard library only; written for
this project in place of flamegraph.pl, which Debian does not package.
"""
import argparse
import hashlib
import html
import sys

FONT = 12
FRAME_H = 17
PAD_TOP = 50
PAD_BOTTOM = 36
PAD_SIDE = 10


class Node:
    __slots__ = ("name", "value", "children")

    def __init__(self, name):
        self.name = name
        self.value = 0
        self.children = {}


def load(lines):
    root = Node("all")
    for line in lines:
        line = line.rstrip("\n")
        if not line:
            continue
        stack, _, count = line.rpartition(" ")
        try:
            n = int(float(count))
        except ValueError:
            continue
        if n <= 0:
            continue
        root.value += n
        node = root
        for frame in stack.split(";") if stack else []:
            child = node.children.get(frame)
            if child is None:
                child = node.children[frame] = Node(frame)
            child.value += n
            node = child
    return root


def colour(name):
    h = int(hashlib.md5(name.encode()).hexdigest()[:8], 16)
    v1, v2, v3 = (h & 0xFF) / 255.0, ((h >> 8) & 0xFF) / 255.0, ((h >> 16) & 0xFF) / 255.0
    if name.startswith("[") and name.endswith("]"):
        g = int(190 + 40 * v1)
        return "rgb(%d,%d,%d)" % (g, g, g)
    if name.endswith("_[k]"):
        return "rgb(%d,%d,%d)" % (230 + 25 * v1, 120 + 60 * v2, 40 * v3)
    if name.startswith("tk_") or name.startswith("tasker"):
        return "rgb(%d,%d,%d)" % (80 + 50 * v1, 150 + 60 * v2, 220 + 35 * v3)
    if name[:1].isupper() or name.startswith(("exec_", "heap_", "index_", "plpgsql_", "pg_",
                                               "hash_", "Exec", "SPI_", "standard_")):
        return "rgb(%d,%d,%d)" % (120 + 60 * v1, 190 + 50 * v2, 80 + 50 * v3)
    return "rgb(%d,%d,%d)" % (205 + 50 * v1, 80 + 130 * v2, 50 + 30 * v3)


def fit(name, width):
    chars = int(width / (FONT * 0.59))
    if chars < 3:
        return ""
    if len(name) <= chars:
        return name
    return name[: chars - 2] + ".."


SCRIPT = r"""
<![CDATA[
var W, frames, details, total, searchbtn, matchedtxt, unzoombtn, zoomed = null;
function init(evt) {
  W = +document.documentElement.getAttribute("data-w");
  total = +document.documentElement.getAttribute("data-total");
  frames = document.getElementsByClassName("f");
  details = document.getElementById("details").firstChild;
  searchbtn = document.getElementById("search");
  matchedtxt = document.getElementById("matched");
  unzoombtn = document.getElementById("unzoom");
  for (var i = 0; i < frames.length; i++) {
    var g = frames[i];
    g.onmouseover = function () { details.nodeValue = this.querySelector("title").textContent; };
    g.onmouseout = function () { details.nodeValue = " "; };
    g.onclick = function () { zoom(this); };
  }
  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape") unzoom();
    if ((e.ctrlKey || e.metaKey) && e.key === "f") { e.preventDefault(); search(); }
  });
}
function fitText(g, w) {
  var t = g.querySelector("text"), name = g.getAttribute("data-n");
  var chars = Math.floor(w / (12 * 0.59));
  t.textContent = chars < 3 ? "" : (name.length <= chars ? name : name.substring(0, chars - 2) + "..");
}
function place(g, x, w) {
  var r = g.querySelector("rect"), t = g.querySelector("text");
  r.setAttribute("x", x); r.setAttribute("width", Math.max(0, w));
  t.setAttribute("x", x + 3); fitText(g, w);
  g.style.display = w < 0.5 ? "none" : "";
}
function zoom(node) {
  var x0 = +node.getAttribute("data-x"), w0 = +node.getAttribute("data-v");
  var d0 = +node.getAttribute("data-d");
  if (w0 <= 0) return;
  var scale = (W - 2 * 10) / w0;
  for (var i = 0; i < frames.length; i++) {
    var g = frames[i], x = +g.getAttribute("data-x"), v = +g.getAttribute("data-v");
    var d = +g.getAttribute("data-d");
    if (d < d0 && x <= x0 && x + v >= x0 + w0) { place(g, 10, W - 20); g.style.opacity = 0.6; }
    else if (d >= d0 && x >= x0 && x + v <= x0 + w0) { place(g, 10 + (x - x0) * scale, v * scale); g.style.opacity = 1; }
    else { g.style.display = "none"; }
  }
  unzoombtn.style.opacity = 1;
  zoomed = node;
}
function unzoom() {
  var scale = (W - 20) / total;
  for (var i = 0; i < frames.length; i++) {
    var g = frames[i];
    place(g, 10 + (+g.getAttribute("data-x")) * scale, (+g.getAttribute("data-v")) * scale);
    g.style.opacity = 1;
  }
  unzoombtn.style.opacity = 0;
  zoomed = null;
}
function search() {
  var term = prompt("Search for a function (regular expression); empty clears", "");
  if (term === null) return;
  var re = term ? new RegExp(term) : null, seen = {}, hits = 0;
  for (var i = 0; i < frames.length; i++) {
    var g = frames[i], r = g.querySelector("rect");
    if (!r.getAttribute("data-fill")) r.setAttribute("data-fill", r.getAttribute("fill"));
    if (re && re.test(g.getAttribute("data-n"))) {
      r.setAttribute("fill", "rgb(230,0,230)");
      var x = +g.getAttribute("data-x"), v = +g.getAttribute("data-v");
      // count each sample range once: skip frames nested in an already counted one
      var inside = false;
      for (var k in seen) { if (x >= +k && x + v <= seen[k]) { inside = true; break; } }
      if (!inside) { seen[x] = x + v; hits += v; }
    } else {
      r.setAttribute("fill", r.getAttribute("data-fill"));
    }
  }
  matchedtxt.firstChild.nodeValue = re ? "Matched: " + (100 * hits / total).toFixed(1) + "%" : " ";
}
]]>
"""


def render(root, title, width, min_width, unit):
    total = root.value
    rows = []  # (depth, x_samples, value, name)
    maxdepth = 0

    scale = (width - 2 * PAD_SIDE) / float(total) if total else 0.0

    def walk(node, depth, x):
        nonlocal maxdepth
        for child in sorted(node.children.values(), key=lambda c: c.name):
            if child.value * scale >= min_width:
                rows.append((depth, x, child.value, child.name))
                maxdepth = max(maxdepth, depth)
                walk(child, depth + 1, x)
            x += child.value

    rows.append((0, 0, total, "all"))
    walk(root, 1, 0)
    height = PAD_TOP + (maxdepth + 1) * FRAME_H + PAD_BOTTOM
    out = []
    w = out.append
    w('<?xml version="1.0" standalone="no"?>\n')
    w('<svg version="1.1" width="%d" height="%d" onload="init(evt)" viewBox="0 0 %d %d" '
      'xmlns="http://www.w3.org/2000/svg" data-w="%d" data-total="%d">\n'
      % (width, height, width, height, width, total))
    w('<style>text{font-family:Verdana,sans-serif;font-size:%dpx;fill:#000}'
      '.f:hover rect{stroke:#000;stroke-width:0.5}.f{cursor:pointer}'
      '#search,#unzoom{cursor:pointer}</style>\n' % FONT)
    w('<script type="text/ecmascript">%s</script>\n' % SCRIPT)
    w('<rect x="0" y="0" width="%d" height="%d" fill="#f8f8f0"/>\n' % (width, height))
    w('<text x="%d" y="24" text-anchor="middle" style="font-size:17px">%s</text>\n'
      % (width // 2, html.escape(title)))
    w('<text id="unzoom" x="%d" y="24" style="opacity:0" onclick="unzoom()">Reset Zoom</text>\n'
      % PAD_SIDE)
    w('<text id="search" x="%d" y="24" text-anchor="end" onclick="search()">Search</text>\n'
      % (width - PAD_SIDE))
    w('<text id="matched" x="%d" y="%d" text-anchor="end"> </text>\n'
      % (width - PAD_SIDE, height - 12))
    w('<text id="details" x="%d" y="%d"> </text>\n' % (PAD_SIDE, height - 12))
    for depth, x, value, name in rows:
        px = PAD_SIDE + x * scale
        pw = value * scale
        y = height - PAD_BOTTOM - (depth + 1) * FRAME_H
        pct = 100.0 * value / total if total else 0.0
        tip = "%s (%d %s, %.2f%%)" % (name, value, unit, pct)
        esc = html.escape(name, quote=True)
        w('<g class="f" data-n="%s" data-x="%d" data-v="%d" data-d="%d"><title>%s</title>'
          '<rect x="%.1f" y="%d" width="%.1f" height="%d" rx="2" fill="%s"/>'
          '<text x="%.1f" y="%d">%s</text></g>\n'
          % (esc, x, value, depth, html.escape(tip), px, y, pw, FRAME_H - 1,
             colour(name) if depth else "rgb(200,200,200)", px + 3, y + FRAME_H - 5,
             html.escape(fit(name, pw))))
    w("</svg>\n")
    return "".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folded", nargs="?", default="-")
    ap.add_argument("--title", default="Flame graph")
    ap.add_argument("--width", type=int, default=1200)
    ap.add_argument("--min-width", type=float, default=0.1,
                    help="leave out boxes narrower than this many pixels")
    ap.add_argument("--unit", default="samples")
    args = ap.parse_args()
    src = sys.stdin if args.folded == "-" else open(args.folded, errors="replace")
    root = load(src)
    if root.value == 0:
        sys.stderr.write("flamegraph.py: no samples in %s\n" % args.folded)
    sys.stdout.write(render(root, args.title, args.width, args.min_width, args.unit))
    return 0


if __name__ == "__main__":
    sys.exit(main())
