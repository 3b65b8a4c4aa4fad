// MathJax 2.7 configuration, read by assets/mathjax/MathJax.js (served by the site itself).
// \( \) and \[ \] are what pymdownx.arithmatex writes on the Markdown pages; $ $ and $$ $$
// are the notebooks' own (their Markdown cells). Code blocks are never typeset.
window.MathJax = {
  config: ["TeX-AMS-MML_HTMLorMML-full.js"],
  tex2jax: {
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    processEnvironments: true,
  },
  // the package ships MathJax's STIX web fonts (no TeX fonts, no image fonts)
  "HTML-CSS": { availableFonts: [], preferredFont: null, webFont: "STIX-Web",
                imageFont: null },
  menuSettings: { zoom: "None" },
  showMathMenu: false,
  messageStyle: "none",
};
