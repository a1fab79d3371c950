/* onecard: the card page's live QR code.
   Counts down the code's remaining validity and fetches a new code from /card/code a few
   seconds before it expires (the code is valid for 60 seconds and a gate allows 5 seconds of
   leeway, so a code shown must never be close to its end). Time is measured from the
   server's clock, not the device's: a phone whose clock is wrong still refreshes in time.
   A failed fetch is retried with backoff; an expired code is greyed out, never shown as
   valid. If the page's sign-in has ended, the page reloads and signs in again. */
(function () {
  "use strict";

  var figure = document.getElementById("qr");
  if (!figure) {
    return;
  }
  var image = document.getElementById("qr-image");
  var countdown = document.getElementById("qr-countdown");
  var text = document.getElementById("qr-text");
  var url = figure.getAttribute("data-code-url");
  var refreshBefore = Number(figure.getAttribute("data-refresh-before")) || 10;
  var messages = {
    countdown: figure.getAttribute("data-countdown"),
    refreshing: figure.getAttribute("data-refreshing"),
    offline: figure.getAttribute("data-offline")
  };
  var deadline = 0; // performance.now() at which the shown code expires
  var inFlight = false;
  var failures = 0;
  var retryAt = 0;

  function expiresIn(expiresAt, serverNow) {
    return performance.now() + (expiresAt - serverNow) * 1000;
  }

  function show(code) {
    image.src = code.image;
    if (text) {
      text.textContent = code.token;
    }
    deadline = expiresIn(code.expires_at, code.now);
    figure.classList.remove("expired");
    failures = 0;
    tick();
  }

  function fail() {
    failures += 1;
    // 1, 2, 4 … 30 seconds between attempts while the network is away.
    retryAt = performance.now() + Math.min(30000, 1000 * Math.pow(2, failures - 1));
    if (performance.now() >= deadline) {
      countdown.textContent = messages.offline;
    }
  }

  function refresh() {
    if (inFlight) {
      return;
    }
    inFlight = true;
    fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.status === 401) {
          window.location.reload();
          return null;
        }
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (code) {
        if (code) {
          show(code);
        }
      })
      .catch(fail)
      .then(function () {
        inFlight = false;
      });
  }

  function tick() {
    var now = performance.now();
    var left = Math.max(0, Math.ceil((deadline - now) / 1000));
    if (left > 0) {
      countdown.textContent = messages.countdown.replace("{seconds}", String(left));
    } else {
      figure.classList.add("expired");
      countdown.textContent = failures ? messages.offline : messages.refreshing;
    }
    if (left <= refreshBefore && now >= retryAt) {
      refresh();
    }
  }

  deadline = expiresIn(
    Number(figure.getAttribute("data-expires-at")),
    Number(figure.getAttribute("data-now"))
  );
  window.setInterval(tick, 1000);
  // A phone that slept for a while wakes with an old code on screen: replace it at once.
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") {
      tick();
    }
  });
  tick();
})();
