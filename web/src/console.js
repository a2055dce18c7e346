// cerfs console: shows every <time datetime="...Z"> in the viewer's time zone; the title
// keeps the UTC time. Pages work without it.
document.querySelectorAll("time[datetime]").forEach(function (el) {
  var d = new Date(el.getAttribute("datetime"));
  if (!isNaN(d)) { el.textContent = d.toLocaleString(); }
});
