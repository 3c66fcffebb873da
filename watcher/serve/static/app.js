// epochwatch serve: live refresh of the run page, keyboard review on the epoch page.
"use strict";

// A fragment as the browser serialises it, without its timestamp (which changes every time):
// the page's first rendering and each fetched one compare equal when nothing changed, so
// nothing is redrawn (images reloaded, sliders reset) for nothing.
function liveKey(html) {
  const t = document.createElement("template");
  t.innerHTML = html;
  return t.innerHTML.replace(/updated \d\d:\d\d:\d\d/, "").trim();
}

function liveRefresh(box) {
  const url = box.dataset.live;
  let last = liveKey(box.innerHTML);
  async function tick() {
    try {
      const r = await fetch(url, {credentials: "same-origin", cache: "no-store"});
      if (r.ok) {
        const html = await r.text();
        const key = liveKey(html);
        if (key !== last) { box.innerHTML = html; last = key; }
        else { const u = box.querySelector(".updated"); const m = html.match(/updated \d\d:\d\d:\d\d/); if (u && m) u.textContent = m[0]; }
      }
    } catch (e) { /* server restarting: try again at the next tick */ }
    setTimeout(tick, 2000);
  }
  setTimeout(tick, 2000);
}

function reviewKeys(form) {
  const sets = Array.from(form.querySelectorAll("fieldset.score"));
  let active = sets.findIndex(f => !f.querySelector("input:checked"));
  if (active < 0) active = 0;
  const mark = () => sets.forEach((f, i) => f.classList.toggle("active", i === active));
  mark();
  sets.forEach((f, i) => f.addEventListener("change", () => { active = Math.min(i + 1, sets.length - 1); mark(); }));
  const notes = form.querySelector("textarea");
  document.addEventListener("keydown", ev => {
    if (ev.altKey || ev.metaKey) return;
    const typing = ev.target === notes || (ev.target.tagName === "SELECT");
    if (typing) {
      if (ev.key === "Enter" && ev.ctrlKey) { ev.preventDefault(); form.requestSubmit(); }
      if (ev.key === "Escape") notes.blur();
      return;
    }
    if (ev.ctrlKey) return;
    if (/^[0-9]$/.test(ev.key)) {
      const value = ev.key === "0" ? "10" : ev.key;
      const input = sets[active].querySelector(`input[value="${value}"]`);
      input.checked = true;
      active = Math.min(active + 1, sets.length - 1);
      mark();
      ev.preventDefault();
    } else if (ev.key === "Backspace") {
      const cur = sets[active].querySelector("input:checked");
      if (cur) cur.checked = false;
      else if (active > 0) { active -= 1; const prev = sets[active].querySelector("input:checked"); if (prev) prev.checked = false; }
      mark();
      ev.preventDefault();
    } else if (ev.key === "Enter") {
      ev.preventDefault();
      form.requestSubmit();
    } else if (ev.key === "n") {
      ev.preventDefault();
      notes.focus();
    } else if ((ev.key === "ArrowLeft" || ev.key === "ArrowRight") && ev.target.type !== "radio") {
      // (on a focused score button the arrows move within its row, as browsers do)
      const link = document.getElementById(ev.key === "ArrowLeft" ? "prev" : "next");
      if (link) { ev.preventDefault(); location.href = link.href; }
    }
  });
}

// The sample strip's per-prompt slider: one epoch's sample, large, chosen by the slider.
// Delegated, so it keeps working after the strip is refreshed.
document.addEventListener("input", ev => {
  const range = ev.target;
  if (!range.matches || !range.matches("input[type=range][data-srcs]")) return;
  const i = Number(range.value);
  const row = range.closest(".slider");
  const img = row.querySelector("img.slide");
  img.src = range.dataset.srcs.split(" ")[i];
  img.alt = "epoch " + range.dataset.epochs.split(" ")[i];
  row.querySelector("a.slidelink").href = range.dataset.pages.split(" ")[i];
  row.querySelector("output").textContent = range.dataset.epochs.split(" ")[i];
});

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-live]").forEach(liveRefresh);
  const form = document.getElementById("review-form");
  if (form) reviewKeys(form);
});
