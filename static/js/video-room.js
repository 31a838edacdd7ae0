/*
 * The video consultation page (templates/telemedicine/video/room_*.html).
 *
 * Reads its settings from the JSON block #video-config (no inline script: strict CSP).
 * When the room is open (the polled status says data-can-join="true") it POSTs for a
 * room token (with the CSRF token; the token is never put in a URL or the page) and, if
 * a LiveKit server is configured and reachable, connects with livekit-client (vendored,
 * global LivekitClient). It asks for a new token before the current one runs out.
 * Without a server (LIVEKIT_URL empty) or when it cannot be reached, it says so and
 * the page keeps working: status, countdown, help and the way to chat.
 */
(function () {
  "use strict";

  var root = document.getElementById("video-room");
  var configNode = document.getElementById("video-config");
  if (!root || !configNode) {
    return;
  }
  var config;
  try {
    config = JSON.parse(configNode.textContent);
  } catch (e) {
    return;
  }
  var texts = config.texts || {};
  var LK = window.LivekitClient;

  var state = {
    joined: false,
    joining: false,
    token: null,
    expiresAt: null,
    refreshTimer: null,
    room: null,
    connected: false,
    audioOnly: false,
    ended: false,
    failedAt: null,
  };

  function t(key, params) {
    var text = texts[key] || key;
    if (params) {
      Object.keys(params).forEach(function (name) {
        text = text.replace("%(" + name + ")s", params[name]);
      });
    }
    return text;
  }

  function el(id) {
    return document.getElementById(id);
  }

  // --- Notices -------------------------------------------------------------------------

  function showNotice(text) {
    var box = el("video-notice");
    if (!box) {
      return;
    }
    box.querySelector("[data-video-notice-text]").textContent = text;
    box.hidden = false;
  }

  function hideNotice() {
    var box = el("video-notice");
    if (box) {
      box.hidden = true;
    }
  }

  function setConnection(text) {
    var node = el("video-connection");
    if (node) {
      node.textContent = text;
    }
  }

  // --- Countdown -------------------------------------------------------------------------

  function two(n) {
    return (n < 10 ? "0" : "") + n;
  }

  function duration(ms) {
    var total = Math.max(0, Math.floor(ms / 1000));
    var hours = Math.floor(total / 3600);
    var minutes = Math.floor((total % 3600) / 60);
    var seconds = total % 60;
    return (hours ? hours + ":" + two(minutes) : String(minutes)) + ":" + two(seconds);
  }

  var startsAt = Date.parse(config.startsAt);
  var endsAt = Date.parse(config.endsAt);
  var closesAt = Date.parse(config.closesAt);

  function tick() {
    var node = el("video-countdown");
    if (!node || isNaN(startsAt)) {
      return;
    }
    var now = Date.now();
    var text;
    if (now < startsAt) {
      text = t("startsIn", { time: duration(startsAt - now) });
    } else if (now < endsAt) {
      text = t("timeLeft", { time: duration(endsAt - now) });
    } else if (now < closesAt) {
      text = t("overtime", { time: duration(closesAt - now) });
    } else {
      text = t("closed");
    }
    if (node.textContent !== text) {
      node.textContent = text;
    }
  }

  // --- Token -------------------------------------------------------------------------------

  function csrfToken() {
    try {
      var headers = JSON.parse(document.body.getAttribute("hx-headers") || "{}");
      if (headers["X-CSRFToken"]) {
        return headers["X-CSRFToken"];
      }
    } catch (e) {
      /* fall through to the cookie */
    }
    var match = document.cookie.match(/(?:^|;\s*)(?:__Host-)?csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function fetchToken() {
    return fetch(config.tokenUrl, {
      method: "POST",
      credentials: "same-origin",
      cache: "no-store",
      headers: { "X-CSRFToken": csrfToken(), "X-Requested-With": "fetch" },
    }).then(function (response) {
      if (response.status === 409) {
        state.ended = true;
        return response.json().then(function (data) {
          throw new Error(data.message || t("ended"));
        });
      }
      if (!response.ok) {
        throw new Error(t("tokenFailed"));
      }
      return response.json();
    });
  }

  function scheduleRefresh(seconds) {
    if (state.refreshTimer) {
      window.clearTimeout(state.refreshTimer);
    }
    state.refreshTimer = window.setTimeout(refreshToken, Math.max(30, seconds) * 1000);
  }

  function refreshToken() {
    if (state.ended || Date.now() > closesAt) {
      return;
    }
    fetchToken()
      .then(function (data) {
        state.token = data.token;
        state.expiresAt = data.expiresAt || null;
        if (data.refreshIn) {
          scheduleRefresh(data.refreshIn);
        }
      })
      .catch(function () {
        /* The window closed or the consultation ended: the status says so. */
      });
  }

  // --- Joining ---------------------------------------------------------------------------

  function statusNode() {
    return el("video-status");
  }

  function canJoin() {
    var node = statusNode();
    return !!node && node.getAttribute("data-can-join") === "true";
  }

  function statusVersion() {
    var node = statusNode();
    return node ? node.getAttribute("hx-get") : "";
  }

  function join() {
    if (state.joined || state.joining || state.ended) {
      return;
    }
    // After a refusal, try again only once the status has changed (no retry loop).
    if (state.failedAt && state.failedAt === statusVersion()) {
      return;
    }
    state.joining = true;
    root.setAttribute("data-token-state", "fetching");
    fetchToken()
      .then(function (data) {
        state.joined = true;
        state.token = data.token;
        state.expiresAt = data.expiresAt || null;
        root.setAttribute("data-token-state", data.token ? "received" : "none");
        if (data.refreshIn) {
          scheduleRefresh(data.refreshIn);
        }
        refreshStatus();
        if (!data.media || !data.token || !data.url || !config.livekitUrl) {
          setConnection(t("waitingRoom"));
          showNotice(data.message || t("mediaOff"));
          return;
        }
        if (!LK) {
          setConnection(t("disconnected"));
          showNotice(t("unreachable"));
          return;
        }
        connect(data.url, data.token);
      })
      .catch(function (error) {
        state.failedAt = statusVersion();
        root.setAttribute("data-token-state", "failed");
        showNotice(error && error.message ? error.message : t("tokenFailed"));
      })
      .then(function () {
        state.joining = false;
      });
  }

  function refreshStatus() {
    var node = statusNode();
    if (node && window.htmx) {
      window.htmx.ajax("GET", node.getAttribute("hx-get"), { target: node, swap: "outerHTML" });
    }
  }

  // --- Media (LiveKit) -------------------------------------------------------------------

  var CONNECT_TIMEOUT_MS = 15000;

  function controls() {
    return root.querySelectorAll("[data-video-action]");
  }

  function setControlsEnabled(enabled) {
    controls().forEach(function (button) {
      button.disabled = !enabled;
    });
  }

  function setPressed(action, pressed, label) {
    var button = root.querySelector('[data-video-action="' + action + '"]');
    if (button) {
      button.setAttribute("aria-pressed", pressed ? "true" : "false");
      if (label) {
        button.textContent = label;
      }
    }
  }

  function attachTrack(track, containerId) {
    var container = el(containerId);
    if (!container) {
      return;
    }
    var media = track.attach();
    if (track.kind === "video") {
      media.setAttribute("playsinline", "");
      media.muted = true;
      container.classList.add("has-video");
    }
    container.appendChild(media);
  }

  function detachTrack(track, containerId) {
    track.detach().forEach(function (media) {
      media.remove();
    });
    var container = el(containerId);
    if (container && !container.querySelector("video")) {
      container.classList.remove("has-video");
    }
  }

  var QUALITY = {
    excellent: ["qualityExcellent", "success"],
    good: ["qualityGood", "success"],
    poor: ["qualityPoor", "warning"],
    lost: ["qualityLost", "danger"],
    unknown: ["qualityUnknown", "neutral"],
  };

  function showQuality(quality) {
    var node = el("video-quality");
    var entry = QUALITY[quality] || QUALITY.unknown;
    if (!node) {
      return;
    }
    node.textContent = t(entry[0]);
    node.className = "status-badge status-badge--" + entry[1];
    node.setAttribute("data-quality", quality);
    var help = el("video-help-poor");
    if (help) {
      help.hidden = !(quality === "poor" || quality === "lost");
    }
  }

  function showPermissionHelp(error) {
    var failure = LK && LK.MediaDeviceFailure ? LK.MediaDeviceFailure.getFailure(error) : null;
    var name = error && error.name ? error.name : "";
    if (failure === "PermissionDenied" || name === "NotAllowedError") {
      var help = el("video-help-permission");
      if (help) {
        help.hidden = false;
      }
      showNotice(t("permissionDenied"));
    }
  }

  function updateLocalButtons() {
    var local = state.room && state.room.localParticipant;
    if (!local) {
      return;
    }
    var camera = local.isCameraEnabled;
    var mic = local.isMicrophoneEnabled;
    var screen = local.isScreenShareEnabled;
    setPressed("camera", camera, t(camera ? "cameraOn" : "cameraOff"));
    setPressed("microphone", mic, t(mic ? "micOn" : "micOff"));
    setPressed("screen", screen, t(screen ? "shareStop" : "shareStart"));
    setPressed("audio-only", state.audioOnly, t(state.audioOnly ? "audioOnlyOn" : "audioOnlyOff"));
  }

  function setRemoteVideo(subscribed) {
    if (!state.room) {
      return;
    }
    state.room.remoteParticipants.forEach(function (participant) {
      participant.trackPublications.forEach(function (publication) {
        if (publication.kind === "video" && publication.setSubscribed) {
          publication.setSubscribed(subscribed);
        }
      });
    });
  }

  function onAction(event) {
    var button = event.target.closest("[data-video-action]");
    if (!button || !state.room) {
      return;
    }
    var local = state.room.localParticipant;
    var action = button.getAttribute("data-video-action");
    var done;
    if (action === "camera") {
      done = local.setCameraEnabled(!local.isCameraEnabled);
    } else if (action === "microphone") {
      done = local.setMicrophoneEnabled(!local.isMicrophoneEnabled);
    } else if (action === "screen") {
      done = local.setScreenShareEnabled(!local.isScreenShareEnabled);
    } else if (action === "audio-only") {
      state.audioOnly = !state.audioOnly;
      done = local.setCameraEnabled(!state.audioOnly);
      setRemoteVideo(!state.audioOnly);
    } else if (action === "leave") {
      done = state.room.disconnect();
    }
    Promise.resolve(done)
      .catch(showPermissionHelp)
      .then(updateLocalButtons);
  }

  function connect(url, token) {
    var E = LK.RoomEvent;
    var room = new LK.Room({ adaptiveStream: true, dynacast: true });
    state.room = room;
    setConnection(t("connecting"));

    room
      .on(E.TrackSubscribed, function (track) {
        attachTrack(track, "video-remote");
      })
      .on(E.TrackUnsubscribed, function (track) {
        detachTrack(track, "video-remote");
      })
      .on(E.LocalTrackPublished, function (publication) {
        if (publication.track && publication.kind === "video" && publication.source === "camera") {
          attachTrack(publication.track, "video-local");
        }
        updateLocalButtons();
      })
      .on(E.LocalTrackUnpublished, function (publication) {
        if (publication.track) {
          detachTrack(publication.track, "video-local");
        }
        updateLocalButtons();
      })
      .on(E.ConnectionQualityChanged, function (quality, participant) {
        if (participant === room.localParticipant) {
          showQuality(quality);
        }
      })
      .on(E.ParticipantConnected, function () {
        setConnection(t("connected") + " — " + t("remoteJoined"));
        refreshStatus();
      })
      .on(E.ParticipantDisconnected, function () {
        setConnection(t("connected") + " — " + t("remoteLeft"));
        refreshStatus();
      })
      .on(E.Reconnecting, function () {
        setConnection(t("reconnecting"));
      })
      .on(E.Reconnected, function () {
        setConnection(t("connected"));
      })
      .on(E.MediaDevicesError, showPermissionHelp)
      .on(E.Disconnected, function () {
        state.connected = false;
        setControlsEnabled(false);
        setConnection(t("disconnected"));
        showQuality("unknown");
        refreshStatus();
      });

    var timeout = new Promise(function (resolve, reject) {
      window.setTimeout(function () {
        reject(new Error("timeout"));
      }, CONNECT_TIMEOUT_MS);
    });
    Promise.race([room.connect(url, token), timeout])
      .then(function () {
        state.connected = true;
        hideNotice();
        setConnection(t("connected"));
        setControlsEnabled(true);
        var help = el("video-controls-help");
        if (help) {
          help.hidden = true;
        }
        return room.localParticipant.enableCameraAndMicrophone().catch(function (error) {
          showPermissionHelp(error);
          // Without a camera the call can go on by voice.
          return room.localParticipant.setMicrophoneEnabled(true).catch(showPermissionHelp);
        });
      })
      .then(updateLocalButtons)
      .catch(function () {
        state.connected = false;
        room.disconnect();
        setConnection(t("disconnected"));
        showNotice(t("unreachable"));
      });
  }

  // --- Wiring ------------------------------------------------------------------------------

  root.addEventListener("click", onAction);

  document.body.addEventListener("htmx:afterSwap", function (event) {
    if (event.target && event.target.id === "video-status" && canJoin()) {
      join();
    }
  });
  // htmx swaps the status element itself (outerHTML): look again after every settle.
  document.body.addEventListener("htmx:afterSettle", function () {
    var node = statusNode();
    if (node && node.getAttribute("data-state") === "ended") {
      state.ended = true;
    }
    if (canJoin()) {
      join();
    }
  });

  tick();
  window.setInterval(tick, 1000);
  if (canJoin()) {
    join();
  }
  window.addEventListener("pagehide", function () {
    if (state.room) {
      state.room.disconnect();
    }
  });
})();
