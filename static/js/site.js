// Toggles the navigation on small screens. Loaded with the page's CSP nonce; no inline scripts.
document.addEventListener("DOMContentLoaded", () => {
  const toggle = document.querySelector(".nav-toggle");
  const nav = document.getElementById("site-nav");
  if (!toggle || !nav) return;
  toggle.addEventListener("click", () => {
    const open = nav.classList.toggle("open");
    toggle.setAttribute("aria-expanded", String(open));
  });
});

// Copy buttons: <button data-copy="text">; says "Copied" for a moment.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  try {
    await navigator.clipboard.writeText(button.dataset.copy);
    const label = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = label; }, 1500);
  } catch (error) {
    button.textContent = "Select and copy by hand";
  }
});

// Pricing page: a platform switcher over the per-platform sections (without JavaScript, both are shown).
document.addEventListener("DOMContentLoaded", () => {
  const switcher = document.querySelector(".platform-switch");
  if (!switcher) return;
  const panels = document.querySelectorAll("[data-platform-panel]");
  const show = (platform) => {
    panels.forEach((panel) => { panel.hidden = panel.dataset.platformPanel !== platform; });
    switcher.querySelectorAll("[data-platform]").forEach((button) => {
      button.setAttribute("aria-selected", String(button.dataset.platform === platform));
    });
  };
  switcher.hidden = false;
  switcher.addEventListener("click", (event) => {
    const button = event.target.closest("[data-platform]");
    if (button) show(button.dataset.platform);
  });
  const first = switcher.querySelector("[data-platform]");
  if (first) show(first.dataset.platform);
});
