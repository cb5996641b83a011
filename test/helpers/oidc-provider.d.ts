// oidc-provider ships no type declarations; tests use it as a black-box authorization server.
declare module 'oidc-provider' {
  const Provider: any;
  export default Provider;
}
