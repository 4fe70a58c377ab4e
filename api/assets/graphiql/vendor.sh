#!/usr/bin/env bash
# Refreshes the vendored GraphiQL files from the versions pinned in
# package.json / package-lock.json: production builds only, with their
# licences, source-map references removed (the maps are not served).
#   cd api/assets/graphiql && ./vendor.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$here/package.json" "$work/"
if [ -f "$here/package-lock.json" ]; then cp "$here/package-lock.json" "$work/"; fi
(cd "$work" && npm install --ignore-scripts --no-audit --no-fund >/dev/null)
cp "$work/package-lock.json" "$here/"
m="$work/node_modules"
strip() { sed '/^\/\/# sourceMappingURL=/d' "$1" > "$2"; }
strip "$m/react/umd/react.production.min.js" "$here/react.production.min.js"
strip "$m/react-dom/umd/react-dom.production.min.js" "$here/react-dom.production.min.js"
strip "$m/graphiql/graphiql.min.js" "$here/graphiql.min.js"
strip "$m/graphiql/graphiql.min.css" "$here/graphiql.min.css"
cp "$m/react/LICENSE" "$here/LICENSE.react"
cp "$m/react-dom/LICENSE" "$here/LICENSE.react-dom"
cp "$m/graphiql/LICENSE" "$here/LICENSE.graphiql"
# The npm packages the builds come from, with their licences, for the record.
node -e '
const lock = require(process.argv[1]);
for (const [path, p] of Object.entries(lock.packages)) {
  if (path) console.log(`${path.replace(/^.*node_modules\//, "")}@${p.version} ${p.license || "?"}`);
}' "$here/package-lock.json" | sort > "$here/BUNDLED.txt"
echo "vendored into $here"
