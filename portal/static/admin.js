// The admin portal's one script, served by Keysmith. Every page works
// without it; it adds: "/" focuses the search, Esc closes an open menu,
// search as you type (the results replaced in place, the address kept in
// step), select-all checkboxes, Copy buttons and confirmation dialogs.
"use strict";

document.addEventListener("keydown", (event) => {
  // Ctrl+K or Cmd+K: the global search, from anywhere.
  if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "k") {
    const global = document.getElementById("global-search");
    if (global) {
      event.preventDefault();
      global.focus();
      global.select();
      return;
    }
  }
  const typing = event.target.closest("input, textarea, select, [contenteditable]");
  if (event.key === "/" && !typing) {
    const search = document.querySelector("main input[type=search]") || document.getElementById("global-search");
    if (search) {
      event.preventDefault();
      search.focus();
      search.select();
    }
  }
  if (event.key === "Escape") {
    for (const open of document.querySelectorAll("details[open]")) {
      open.open = false;
      const summary = open.querySelector("summary");
      if (summary && open.contains(document.activeElement)) summary.focus();
    }
  }
});

// Search as you type: the same GET the form sends, its results swapped in.
const form = document.querySelector("form.filters");
if (form && document.getElementById("results")) {
  let timer = null;
  let asked = 0;
  const refresh = async () => {
    const params = new URLSearchParams(new FormData(form));
    for (const [name, value] of [...params]) if (!value) params.delete(name);
    const address = form.action + (params.toString() ? "?" + params : "");
    const ask = ++asked;
    try {
      const answer = await fetch(address, { credentials: "same-origin", headers: { Accept: "text/html" } });
      const page = new DOMParser().parseFromString(await answer.text(), "text/html");
      const fresh = page.getElementById("results");
      const shown = document.getElementById("results");
      if (fresh && shown && ask === asked) {
        shown.replaceWith(fresh);
        history.replaceState(null, "", address);
      }
    } catch (e) {
      // The form still works by submitting it.
    }
  };
  form.addEventListener("input", (event) => {
    if (!event.target.matches("input[type=search]")) return;
    clearTimeout(timer);
    timer = setTimeout(refresh, 250);
  });
  form.addEventListener("change", (event) => {
    if (event.target.matches("select")) refresh();
  });
}

// Select-all: a checkbox with data-select-all="name" ticks every box of that name.
document.addEventListener("change", (event) => {
  const all = event.target.closest("input[data-select-all]");
  if (!all) return;
  for (const box of document.querySelectorAll(`input[type=checkbox][name="${all.dataset.selectAll}"]`)) {
    box.checked = all.checked;
  }
});

// Copy buttons: data-copy names the element whose text is copied.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (!source) return;
  try {
    await navigator.clipboard.writeText(source.textContent);
    button.textContent = "Copied";
  } catch (e) {
    const range = document.createRange();
    range.selectNodeContents(source);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    button.textContent = "Press Ctrl+C to copy";
  }
});

// Confirmation dialogs: a link with data-dialog opens its confirmation page's
// form in a modal dialog (Esc or Cancel closes it); without the script, or if
// anything goes wrong, the link opens the page itself.
document.addEventListener("click", async (event) => {
  const link = event.target.closest("a[data-dialog]");
  if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
  event.preventDefault();
  const open = () => { window.location.href = link.href; };
  try {
    const answer = await fetch(link.href, { credentials: "same-origin", headers: { Accept: "text/html" } });
    if (!answer.ok) return open();
    const page = new DOMParser().parseFromString(await answer.text(), "text/html");
    const body = page.querySelector("main .confirm");
    const heading = page.querySelector("main h1");
    if (!body || !heading) return open();
    for (const menu of document.querySelectorAll("details[open]")) menu.open = false;
    const dialog = document.createElement("dialog");
    dialog.className = "confirm-dialog";
    heading.id = "dialog-title";
    dialog.setAttribute("aria-labelledby", "dialog-title");
    dialog.append(document.adoptNode(heading), document.adoptNode(body));
    for (const cancel of dialog.querySelectorAll("a.cancel")) {
      cancel.addEventListener("click", (e) => { e.preventDefault(); dialog.close(); });
    }
    dialog.addEventListener("close", () => { dialog.remove(); link.focus(); });
    document.body.append(dialog);
    dialog.showModal();
  } catch (e) {
    open();
  }
});

// A generator's preview as its fields change: the form posted as "Preview",
// its answer's preview swapped in (the Preview button does the same without the script).
const generatorForm = document.querySelector("form.generator-form");
if (generatorForm) {
  let timer = null;
  let asked = 0;
  const preview = async () => {
    const body = new URLSearchParams(new FormData(generatorForm));
    body.set("intent", "preview");
    const ask = ++asked;
    try {
      const answer = await fetch(generatorForm.action, { method: "POST", credentials: "same-origin", body });
      const page = new DOMParser().parseFromString(await answer.text(), "text/html");
      const fresh = page.getElementById("preview");
      const shown = document.getElementById("preview");
      if (fresh && shown && ask === asked) shown.replaceWith(fresh);
    } catch (e) {
      // The Preview button still works.
    }
  };
  generatorForm.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(preview, 400);
  });
}
