// Live restore progress: polls the restore's JSON every 2 s until it is done.
(() => {
  const root = document.getElementById("restore-progress");
  if (!root) return;
  const field = (name) => root.querySelector(`[data-field="${name}"]`);
  const render = (data) => {
    field("status").textContent = data.status;
    field("status").className = `badge badge-${data.status}`;
    field("error").textContent = data.error;
    field("error").hidden = !data.error;
    field("steps").replaceChildren(...data.steps.map((step) => {
      const item = document.createElement("li");
      item.className = `step step-${step.status}`;
      item.textContent = `${step.title} — ${step.status}`;
      return item;
    }));
    field("log").textContent = data.log.join("\n");
    return data.active;
  };
  window.shophostingPoll(root.dataset.progressUrl, render);
})();
