/// The line-side screen (`GET /` on the HTTP listener): the current label, confidence, shift and
/// health, the last minutes as a timeline, the latest window before and after canonicalization.
/// It follows the daemon's events as server-sent events from `/events` and reads `/healthz`;
/// it only ever GETs. Everything is in the page: no external assets, text set with
/// `textContent` only, so nothing from a label can become markup.
public enum LivePage {
    public static let html = HTML.document(title: "equivd live", body: body, head: "<script>\(script)</script>")

    private static let body = """
        <h1>equivd <span id="source" class="muted"></span></h1>
        <div class="row">
        <div><div class="muted">label</div><div id="label" class="big">–</div></div>
        <div><div class="muted">p</div><div id="p" class="big">–</div></div>
        <div><div class="muted">shift (semitones)</div><div id="shift" class="big">–</div></div>
        <div><div class="muted">health</div><div id="health" class="big">–</div><div id="health-reason" class="muted"></div></div>
        </div>
        <p id="fallback" class="muted"></p>
        <h3>Last <span id="minutes">5</span> minutes</h3>
        <svg id="timeline" width="900" height="190" xmlns="http://www.w3.org/2000/svg"></svg>
        <h3>Latest window</h3>
        <div class="row">
        <figure><img id="received" alt="latest window as received" width="300" height="336" style="image-rendering:pixelated">
        <figcaption>as received</figcaption></figure>
        <figure><img id="canonicalized" alt="latest window canonicalized" width="300" height="336" style="image-rendering:pixelated">
        <figcaption id="canon-caption">canonicalized</figcaption></figure>
        </div>
        <p class="muted">Colours: viridis, one scale for both; frequency up, time to the right.</p>
        """

    private static let script = """
        "use strict";
        const WINDOW_S = 300, SET2 = ["#66c2a5","#fc8d62","#8da0cb","#e78ac3","#a6d854","#ffd92f","#e5c494","#b3b3b3"];
        let classes = [], points = [];
        const $ = id => document.getElementById(id);
        const NS = "http://www.w3.org/2000/svg";
        function svg(tag, attrs, text) {
          const e = document.createElementNS(NS, tag);
          for (const k in attrs) e.setAttribute(k, attrs[k]);
          if (text !== undefined) e.textContent = text;
          return e;
        }
        function color(label) { const i = classes.indexOf(label); return label === null ? "#ffffff" : SET2[(i < 0 ? classes.length : i) % SET2.length]; }
        function draw() {
          const t = $("timeline"); t.replaceChildren();
          const now = Date.now() / 1000, left = 60, w = 700, x = s => left + w * (1 - (now - s) / WINDOW_S);
          points = points.filter(p => now - p.wall_end < WINDOW_S);
          t.appendChild(svg("text", {x: left - 6, y: 11, "text-anchor": "end"}, "label"));
          t.appendChild(svg("text", {x: left - 6, y: 40, "text-anchor": "end"}, "p"));
          t.appendChild(svg("text", {x: left - 6, y: 120, "text-anchor": "end"}, "shift"));
          t.appendChild(svg("rect", {x: left, y: 24, width: w, height: 60, fill: "none", stroke: "#ddd"}));
          t.appendChild(svg("rect", {x: left, y: 94, width: w, height: 60, fill: "none", stroke: "#ddd"}));
          const span = Math.max(1, ...points.map(p => Math.abs(p.shift_semitones)));
          let pl = [], sl = [];
          for (const p of points) {
            const x0 = Math.max(left, x(p.wall_start)), x1 = x(p.wall_end);
            const r = svg("rect", {x: x0, y: 0, width: Math.max(1, x1 - x0), height: 14, fill: color(p.label)});
            if (p.label === null) r.setAttribute("stroke", "#999");
            t.appendChild(r);
            const xc = x((p.wall_start + p.wall_end) / 2);
            pl.push(xc + "," + (24 + 60 * (1 - p.p))); sl.push(xc + "," + (124 - 30 * p.shift_semitones / span));
          }
          t.appendChild(svg("polyline", {points: pl.join(" "), fill: "none", stroke: "#e66101"}));
          t.appendChild(svg("polyline", {points: sl.join(" "), fill: "none", stroke: "#5e81ac"}));
          t.appendChild(svg("text", {x: left + w + 4, y: 104}, "+" + span.toFixed(1) + " st"));
          t.appendChild(svg("text", {x: left + w + 4, y: 154}, "−" + span.toFixed(1) + " st"));
          t.appendChild(svg("text", {x: left, y: 172}, "−" + WINDOW_S / 60 + " min"));
          t.appendChild(svg("text", {x: left + w, y: 172, "text-anchor": "end"}, "now"));
          classes.forEach((c, i) => {
            t.appendChild(svg("rect", {x: left + w + 60, y: i * 13, width: 10, height: 10, fill: color(c)}));
            t.appendChild(svg("text", {x: left + w + 74, y: i * 13 + 9}, c));
          });
        }
        function prediction(e) {
          points.push(e);
          $("label").textContent = e.label === null ? (e.fallback === "idle" ? "idle" : "uncertain") : e.label;
          $("label").className = "big " + (e.label === null ? "abstain" : "ok");
          $("p").textContent = e.fallback === "idle" ? "–" : e.p.toFixed(2);
          $("shift").textContent = (e.shift_semitones >= 0 ? "+" : "") + e.shift_semitones.toFixed(1);
          $("fallback").textContent = "window " + e.seq + " at " + e.stream_start.toFixed(2) + " s · fallback " + e.fallback +
            (e.gap_before_ms ? " · " + Math.round(e.gap_before_ms) + " ms of audio lost before it" : "");
          $("received").src = "/latest/received.png?seq=" + e.seq;
          $("canonicalized").src = "/latest/canonicalized.png?seq=" + e.seq;
          $("canon-caption").textContent = "canonicalized (" + (e.shift_semitones >= 0 ? "+" : "") + e.shift_semitones.toFixed(1) + " semitones undone)";
          draw();
        }
        function health() {
          fetch("/healthz", {cache: "no-store"}).then(r => r.text().then(t => {
            $("health").textContent = r.ok ? "ok" : "stalled";
            $("health").className = "big " + (r.ok ? "ok" : "abstain");
            $("health-reason").textContent = r.ok ? "" : t.trim();
          })).catch(() => { $("health").textContent = "unreachable"; $("health").className = "big abstain"; });
        }
        window.addEventListener("load", () => {
          const events = new EventSource("/events");
          events.onmessage = m => {
            const e = JSON.parse(m.data);
            if (e.type === "hello") { classes = e.classes; $("source").textContent = e.source; draw(); }
            else if (e.type === "prediction") prediction(e);
          };
          events.onerror = () => { $("health").textContent = "reconnecting"; $("health").className = "big abstain"; };
          health(); setInterval(health, 5000); setInterval(draw, 5000);
        });
        """
}
