/* The reader's time zone for the portal's pages: the browser's IANA zone name in the s3av_tz cookie
   (s3av/timezones.py reads it). A file, not inline: the Content-Security-Policy refuses inline script. */
(function () {
  "use strict";
  var zone;
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  } catch (error) {
    return;
  }
  if (!zone || !/^[A-Za-z0-9_+\-\/]{1,64}$/.test(zone)) return;
  if (document.cookie.split("; ").indexOf("s3av_tz=" + zone) !== -1) return;
  var secure = window.location.protocol === "https:" ? "; secure" : "";
  document.cookie = "s3av_tz=" + zone + "; path=/; max-age=31536000; samesite=lax" + secure;
})();
