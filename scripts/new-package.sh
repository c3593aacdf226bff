#!/usr/bin/env bash
# Scaffolds one workspace package: package.json, tsconfig trio (src + test), README.
set -euo pipefail
dir=$1 name=$2 desc=$3 deps=${4:-}
mkdir -p "$dir/src" "$dir/test"
cat > "$dir/package.json" <<JSON
{
  "name": "$name",
  "version": "0.1.0",
  "private": true,
  "description": "$desc",
  "license": "Apache-2.0",
  "type": "module",
  "engines": { "node": ">=20.19.0" },
  "exports": {
    ".": { "types": "./dist/index.d.ts", "default": "./dist/index.js" },
    "./*": { "types": "./dist/*.d.ts", "default": "./dist/*.js" },
    "./internal/*": null
  },
  "scripts": { "build": "tsc -b" },
  "dependencies": {},
  "devDependencies": {}
}
JSON
refs=""
for d in $deps; do refs="$refs{ \"path\": \"../../$d/tsconfig.src.json\" }, "; done
refs=${refs%, }
cat > "$dir/tsconfig.json" <<JSON
{
  "files": [],
  "references": [{ "path": "./tsconfig.src.json" }, { "path": "./tsconfig.test.json" }]
}
JSON
cat > "$dir/tsconfig.src.json" <<JSON
{
  "extends": "../../tsconfig.base.json",
  "compilerOptions": { "rootDir": "src", "outDir": "dist", "tsBuildInfoFile": "build/src.tsbuildinfo" },
  "include": ["src"],
  "references": [$refs]
}
JSON
cat > "$dir/tsconfig.test.json" <<JSON
{
  "extends": "../../tsconfig.base.json",
  "compilerOptions": { "rootDir": ".", "outDir": "build/test", "emitDeclarationOnly": true, "tsBuildInfoFile": "build/test.tsbuildinfo" },
  "include": ["test"],
  "references": [{ "path": "./tsconfig.src.json" }${refs:+, $refs}]
}
JSON
echo "# $name

$desc" > "$dir/README.md"
