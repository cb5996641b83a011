// @hapi/cookie 12 ships no type declarations: the plugin object is all we use.
declare module '@hapi/cookie' {
  import type { Plugin } from '@hapi/hapi';
  const cookie: { plugin: Plugin<unknown> };
  export default cookie;
}
