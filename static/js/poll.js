// Polls a JSON endpoint: render(data) returns true while there is more to come. Every `everyMs` (2 s by
// default) while active, every 5 s after an error; stops when render says it is done.
window.shophostingPoll = (url, render, everyMs = 2000) => {
  const poll = async () => {
    try {
      const response = await fetch(url, { credentials: "same-origin" });
      if (response.ok && render(await response.json())) setTimeout(poll, everyMs);
      else if (!response.ok) setTimeout(poll, 5000);
    } catch (error) {
      setTimeout(poll, 5000);
    }
  };
  poll();
};
