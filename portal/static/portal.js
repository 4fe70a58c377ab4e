// The portal's only script: the Copy buttons. Without it keys stay selectable.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const key = document.getElementById(button.dataset.copy);
  if (!key) return;
  try {
    await navigator.clipboard.writeText(key.textContent.trim());
    button.textContent = "Copied";
  } catch (e) {
    const range = document.createRange();
    range.selectNodeContents(key);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    button.textContent = "Press Ctrl+C to copy";
  }
});
