/**
 * `GET /docs`: the API reference, rendered in the browser by Swagger UI (the swagger-ui-dist package) from
 * `/openapi.json`. Everything is served from this service — the UI's files from node_modules under
 * `/docs/assets/`, its start-up script as a file — so the page loads no outside resource and needs no relaxation
 * of helmet's Content-Security-Policy (`script-src 'self'`: no inline script).
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname } from "node:path";
import express, { Router } from "express";
import { methodNotAllowed } from "../errors.js";

const require = createRequire(import.meta.url);
const ASSETS = dirname(require.resolve("swagger-ui-dist/package.json"));
const VERSION = (JSON.parse(readFileSync(`${ASSETS}/package.json`, "utf8")) as { version: string }).version;

const PAGE = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Loan service API reference</title>
  <link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png">
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css?v=${VERSION}">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js?v=${VERSION}"></script>
  <script src="/docs/init.js?v=${VERSION}"></script>
</body>
</html>
`;

// No online validator badge (validatorUrl: null): it would send the description to an outside service.
const INIT = `window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  tryItOutEnabled: false,
});
`;

/** Only the files the page loads are served (not the package's maps, HTML or alternative bundles). */
const SERVED = new Set(["/swagger-ui.css", "/swagger-ui-bundle.js", "/favicon-32x32.png", "/favicon-16x16.png"]);

export function docsRouter(): Router {
  const router = Router();
  router
    .route("/docs")
    .get((_req, res) => {
      res.type("html").send(PAGE);
    })
    .all(methodNotAllowed(["GET"]));
  router
    .route("/docs/init.js")
    .get((_req, res) => {
      res.type("text/javascript").set("Cache-Control", "public, max-age=3600").send(INIT);
    })
    .all(methodNotAllowed(["GET"]));
  router.use(
    "/docs/assets",
    (req, _res, next) => (SERVED.has(req.path) ? next() : next("router")),
    express.static(ASSETS, { index: false, fallthrough: false, maxAge: "1d" }),
  );
  return router;
}
