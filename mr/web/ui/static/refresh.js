// A running request's page reloads itself every few seconds (the body's data-refresh-seconds),
// unless one of its forms is being sent.
const seconds = Number(document.body.dataset.refreshSeconds);
if (seconds > 0) {
  const reload = setTimeout(() => location.reload(), seconds * 1000);
  document.addEventListener("submit", () => clearTimeout(reload));
}
