// Live provisioning progress: polls the store's progress endpoint while a job runs, every 2 s unless the
// element says otherwise (data-interval-ms: the staff store page asks every 5 s).
(() => {
  const root = document.getElementById("store-progress");
  if (!root) return;
  const field = (name) => root.querySelector(`[data-field="${name}"]`);
  const render = (data) => {
    field("status").textContent = data.store.status_display;
    field("status").className = `badge badge-${data.store.status}`;
    const message = field("message");
    message.textContent = data.store.message;
    message.hidden = !data.store.message;
    const progress = data.progress;
    // Before the payment is confirmed there is no job yet: keep asking until one starts.
    const waiting = ["awaiting_payment", "queued"].includes(data.store.status);
    if (!progress) return waiting;
    field("eta").textContent = progress.eta_seconds === null ? "" : `about ${progress.eta_seconds} s left`;
    const steps = field("steps");
    if (steps) {
      steps.replaceChildren(...progress.steps.map((step) => {
        const item = document.createElement("li");
        item.className = `step step-${step.status}`;
        item.textContent = `${step.title} — ${step.status}${step.seconds === null ? "" : ` (${step.seconds} s)`}`;
        return item;
      }));
    }
    const log = field("log");
    if (log) log.textContent = progress.log.map((l) => `${l.time} [${l.step}] ${l.message}`).join("\n");
    return progress.job.active || waiting;
  };
  window.shophostingPoll(root.dataset.progressUrl, render, Number(root.dataset.intervalMs) || 2000);
})();
