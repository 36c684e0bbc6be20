// The REST/JSON gateway and web UI of the facade's HTTP side.
export { Gateway, HTTP_STATUS, type GatewayOptions } from './gateway';
export { ROUTES, WATCH_KINDS, WATCH_PATH, match, requestOf, type Route } from './routes';
export { openApiDocument } from './openapi';
export { routesMarkdown } from './readme';
