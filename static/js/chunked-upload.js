// The store import's uploads (templates/backups/import.html): each chosen file is announced (its size is
// checked against the plan's allowance), then sent in chunks with PUT ?offset=N. A chunk the server did not
// take at that offset answers 409 with the offset it holds, and the upload goes on from there.
(function () {
  "use strict";
  const form = document.getElementById("import-form");
  if (!form) return;
  const csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  const status = document.getElementById("upload-status");
  const say = (text) => { status.textContent = text; };
  const remembered = (file) => `import-upload:${form.dataset.uploadUrl}:${file.name}:${file.size}:${file.lastModified}`;

  async function announce(file, part) {
    const body = new FormData();
    body.append("part", part);
    body.append("filename", file.name);
    body.append("size", String(file.size));
    const response = await fetch(form.dataset.uploadUrl, { method: "POST", body, headers: { "X-CSRFToken": csrf } });
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.error || `upload refused (${response.status})`);
    return answer;
  }

  async function resumeOrAnnounce(file, part) {
    const known = sessionStorage.getItem(remembered(file));
    if (known) {
      const upload = JSON.parse(known);
      const response = await fetch(upload.url, { headers: { Accept: "application/json" } });
      if (response.ok) return { ...upload, offset: (await response.json()).offset };
    }
    const upload = await announce(file, part);
    sessionStorage.setItem(remembered(file), JSON.stringify(upload));
    return upload;
  }

  async function send(input) {
    const file = input.files[0];
    if (!file) return;
    const progress = document.getElementById(`${input.id}-progress`);
    const upload = await resumeOrAnnounce(file, input.dataset.part);
    let offset = upload.offset;
    while (offset < file.size) {
      const chunk = file.slice(offset, offset + upload.chunk_bytes);
      const response = await fetch(`${upload.url}?offset=${offset}`, {
        method: "PUT",
        body: chunk,
        headers: { "X-CSRFToken": csrf, "Content-Type": "application/octet-stream" },
      });
      const answer = await response.json();
      if (response.status === 409) { offset = answer.offset; continue; }
      if (!response.ok) throw new Error(answer.error || `upload failed (${response.status})`);
      offset = answer.offset;
      progress.value = Math.floor((100 * offset) / file.size);
    }
    document.getElementById(input.dataset.target).value = String(upload.id);
    say(`${file.name} uploaded.`);
  }

  form.querySelectorAll("input[type=file]").forEach((input) => {
    input.addEventListener("change", () => {
      say(`Uploading ${input.files[0] ? input.files[0].name : ""}…`);
      send(input).catch((error) => say(error.message));
    });
  });
})();
