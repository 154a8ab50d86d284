// The dashboard's own script: the CSRF header on every htmx request, the live message stream,
// the agent terminal (xterm.js) and the stats charts (uPlot). No inline scripts: the page's CSP
// allows only files from the daemon. Everything an agent wrote arrives escaped by the daemon:
// message HTML is built there with every value escaped, terminal text has its control
// characters made visible there; this script never turns agent text into markup itself.
"use strict";

(function () {
  const csrf = document.querySelector('meta[name="hyperhive-csrf"]').content;
  const conn = document.getElementById("conn");

  document.body.addEventListener("htmx:configRequest", (event) => {
    event.detail.headers["X-Hyperhive-CSRF"] = csrf;
  });

  function status(text, ok) {
    if (!conn) return;
    conn.textContent = text;
    conn.className = "conn " + (ok ? "ok" : "bad");
  }

  // An EventSource that carries on after the stream ends for good (a 503, a restarted daemon):
  // it opens a new one from the last id it got, so nothing is missed and nothing shown twice.
  function follow(url, lastId, handlers) {
    let source = null;
    let retry = null;
    function open() {
      const sep = url.includes("?") ? "&" : "?";
      const full = lastId === null ? url : url + sep + "after=" + encodeURIComponent(lastId);
      source = new EventSource(full);
      source.onopen = () => status("live", true);
      source.onerror = () => {
        status("reconnecting…", false);
        if (source.readyState === EventSource.CLOSED && retry === null) {
          retry = setTimeout(() => {
            retry = null;
            open();
          }, 2000);
        }
      };
      for (const [name, handle] of Object.entries(handlers)) {
        source.addEventListener(name, (event) => {
          if (event.lastEventId) lastId = event.lastEventId;
          handle(event);
        });
      }
    }
    open();
    window.addEventListener("beforeunload", () => source && source.close());
  }

  // messages

  const MAX_SHOWN = 500;
  const stream = document.getElementById("stream");
  if (stream) {
    const agent = stream.dataset.agent;
    const url = "/sse/messages" + (agent ? "?agent=" + encodeURIComponent(agent) : "");
    follow(url, stream.dataset.after, {
      msg: (event) => {
        if (document.getElementById("m-" + event.lastEventId)) return;
        // Built and escaped by the daemon (pages.message_item).
        stream.insertAdjacentHTML("afterbegin", event.data);
        const item = stream.firstElementChild;
        item.classList.add("new");
        htmx.process(item);
        while (stream.childElementCount > MAX_SHOWN) stream.lastElementChild.remove();
      },
      gap: (event) => {
        status("behind by " + event.data + " messages: reload the page", false);
      },
    });
    const filter = document.getElementById("agent-filter");
    filter.addEventListener("change", () => {
      window.location.search = filter.value ? "?agent=" + encodeURIComponent(filter.value) : "";
    });
  }

  const sendForm = document.getElementById("send-form");
  if (sendForm) {
    const replyTo = document.getElementById("send-reply-to");
    const note = document.getElementById("send-reply-note");
    const to = document.getElementById("send-to");
    document.body.addEventListener("click", (event) => {
      const button = event.target.closest(".reply-btn");
      if (!button) return;
      replyTo.value = button.dataset.replyId;
      note.textContent = "replying to #" + button.dataset.replyId;
      if ([...to.options].some((o) => o.value === button.dataset.replyTo)) to.value = button.dataset.replyTo;
      document.getElementById("send-body").focus();
    });
    sendForm.addEventListener("htmx:afterRequest", (event) => {
      if (event.detail.successful) {
        document.getElementById("send-body").value = "";
        replyTo.value = "";
        note.textContent = "";
      }
    });
  }

  // the agent terminal

  const termBox = document.getElementById("term");
  if (termBox && window.Terminal) {
    const term = new Terminal({
      convertEol: true,
      disableStdin: true,
      scrollback: 20000,
      fontSize: 13,
      theme: { background: "#11151c", foreground: "#d8dee9" },
    });
    const fit = new FitAddon.FitAddon();
    term.loadAddon(fit);
    term.open(termBox);
    fit.fit();
    window.addEventListener("resize", () => fit.fit());
    let lines = 0;
    follow("/sse/terminal/" + encodeURIComponent(termBox.dataset.agent), null, {
      // Text made inert by the daemon (terminal.line): only its own colour codes are escapes.
      line: (event) => {
        term.write(event.data + "\n");
        termBox.dataset.lines = String(++lines);
        termBox.dataset.lastId = event.lastEventId;
      },
      gap: () => term.write("\x1b[33m… events were skipped: reload for the latest\x1b[0m\n"),
    });
    window.hyperhiveTerminal = term;
  }

  // stats

  const charts = document.getElementById("charts");
  if (charts && window.uPlot) {
    const palette = ["#5e81ac", "#bf616a", "#a3be8c", "#ebcb8b", "#b48ead", "#88c0d0", "#d08770", "#8fbcbb"];
    const TOP = 8;
    const plots = new Map();

    function topAgents(agents, key) {
      const mean = (values) => {
        const seen = values.filter((v) => v !== null);
        return seen.length ? seen.reduce((a, b) => a + b, 0) / seen.length : -1;
      };
      return Object.keys(agents)
        .sort((a, b) => mean(agents[b][key]) - mean(agents[a][key]))
        .slice(0, TOP);
    }

    function draw(id, title, names, columns, data, unit) {
      let box = document.getElementById("chart-" + id);
      if (!box) {
        box = document.createElement("figure");
        box.id = "chart-" + id;
        box.className = "chart";
        charts.appendChild(box);
      }
      const key = id + ":" + names.join(",");
      // Two charts a row on a wide screen, one on a narrow one.
      const perRow = charts.clientWidth >= 1000 ? 2 : 1;
      const width = Math.max(Math.floor((charts.clientWidth - 16 * perRow) / perRow) - 12, 300);
      const old = plots.get(id);
      if (old && old.key === key) {
        old.plot.setData([data.t, ...columns]);
        return;
      }
      if (old) old.plot.destroy();
      const series = [{}, ...names.map((name, i) => ({ label: name, stroke: palette[i % palette.length], width: 1.5 }))];
      const windowS = Number(charts.dataset.window);
      const options = {
        title: title,
        width: width,
        height: 200,
        series: series,
        // Always the whole window (the last hour), however few samples there are yet.
        scales: { x: { time: true, range: () => [Date.now() / 1000 - windowS, Date.now() / 1000] } },
        axes: [{}, { size: 70, values: (u, ticks) => ticks.map((v) => (unit === "$" ? "$" + v : v + unit)) }],
      };
      plots.set(id, { key: key, plot: new uPlot(options, [data.t, ...columns], box) });
    }

    async function refresh() {
      const response = await fetch(charts.dataset.src, { credentials: "same-origin" });
      if (!response.ok) {
        status("stats unavailable (" + response.status + ")", false);
        return;
      }
      const data = await response.json();
      charts.dataset.samples = String(data.t.length);
      draw("rate", "messages per minute", ["messages/min"], [data.messages_per_min], data, "");
      draw("queue", "queue depth", ["queued", "delivered, unacked"], [data.queued, data.delivered], data, "");
      for (const [id, key, title, unit] of [
        ["cpu", "cpu_pct", "CPU per agent", "%"],
        ["mem", "rss_mb", "memory per agent", " MB"],
        ["cost", "cost_usd", "cost per agent (since the log began)", "$"],
        ["tokens", "tokens", "tokens per agent (since the log began)", ""],
      ]) {
        const names = topAgents(data.agents, key);
        draw(id, title, names, names.map((n) => data.agents[n][key]), data, unit);
      }
      status("sampled", true);
    }
    refresh();
    setInterval(refresh, 10000);
  }
})();
