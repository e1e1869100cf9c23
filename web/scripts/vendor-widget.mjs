// Copies rasa-webchat's browser bundle into static/vendor/, without its third-party web font:
// the bundle's stylesheet imports Inter from a font host, and the clinic page makes no
// third-party requests (its CSS uses system fonts instead).
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const webRoot = join(dirname(fileURLToPath(import.meta.url)), "..");
const packageRoot = join(webRoot, "node_modules", "rasa-webchat");
const vendorDir = join(webRoot, "static", "vendor");
const FONT_IMPORT =
  "@import url(https://fonts.googleapis.com/css?family=Inter:400,500,700&display=swap);";
const THIRD_PARTY_FONT = /fonts\.(googleapis|gstatic)\.com/;

const { version } = JSON.parse(readFileSync(join(packageRoot, "package.json"), "utf8"));
const source = readFileSync(join(packageRoot, "lib", "index.js"), "utf8");
const pieces = source.split(FONT_IMPORT);
const bundle = pieces.join("");
// A new version that loads fonts differently must be looked at, not shipped blindly.
if (pieces.length === 1 || THIRD_PARTY_FONT.test(bundle)) {
  console.error(`rasa-webchat ${version}: its font import changed; update scripts/vendor-widget.mjs`);
  process.exit(1);
}
mkdirSync(vendorDir, { recursive: true });
writeFileSync(join(vendorDir, "rasa-webchat.js"), bundle);
copyFileSync(join(packageRoot, "LICENSE"), join(vendorDir, "rasa-webchat.LICENSE"));
console.log(
  `rasa-webchat ${version} -> static/vendor/rasa-webchat.js (${pieces.length - 1} font imports removed)`
);
