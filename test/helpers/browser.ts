// Just enough of a browser for sign-in tests: a cookie jar (cookies ignore ports, as in real
// browsers — the IdP and the service are both on 127.0.0.1), manual redirects, and submission of
// the provider's login and consent forms as a person would.
export interface Page {
  url: string;
  status: number;
  headers: Headers;
  body: string;
}

interface StoredCookie {
  value: string;
  path: string;
}

export class Browser {
  readonly jar = new Map<string, StoredCookie>();
  /** Every URL visited, in order (to assert on the flow, e.g. that PKCE parameters were sent). */
  readonly visited: string[] = [];
  /** Every Set-Cookie line received, raw (to assert on attributes). */
  readonly setCookies: string[] = [];

  cookieHeader(url: string): string {
    const path = new URL(url).pathname;
    return [...this.jar.entries()]
      .filter(
        ([, c]) =>
          path === c.path || path.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`) || c.path === '/',
      )
      .map(([n, c]) => `${n}=${c.value}`)
      .join('; ');
  }

  private store(res: Response, url: string): void {
    for (const line of res.headers.getSetCookie()) {
      this.setCookies.push(line);
      const [pair, ...attrs] = line.split(';').map((s) => s.trim());
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq);
      const value = pair!.slice(eq + 1);
      let path = new URL(url).pathname.replace(/\/[^/]*$/, '') || '/';
      let expired = value === '';
      for (const a of attrs) {
        const [k, v] = a.split('=');
        if (k!.toLowerCase() === 'path' && v) path = v;
        if (k!.toLowerCase() === 'max-age' && Number(v) <= 0) expired = true;
        if (k!.toLowerCase() === 'expires' && v && Date.parse(v) < Date.now()) expired = true;
      }
      if (expired) this.jar.delete(name);
      else this.jar.set(name, { value, path });
    }
  }

  async request(url: string, init: RequestInit = {}): Promise<Page> {
    this.visited.push(url);
    const headers = new Headers(init.headers);
    const cookie = this.cookieHeader(url);
    if (cookie) headers.set('cookie', cookie);
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    this.store(res, url);
    return { url, status: res.status, headers: res.headers, body: await res.text() };
  }

  /** GET, following redirects (and the provider's meta-refresh/forms when `login` is given). */
  async go(url: string, opts: { login?: string; maxSteps?: number } = {}): Promise<Page> {
    let page = await this.request(url);
    for (let step = 0; step < (opts.maxSteps ?? 20); step++) {
      const loc = page.headers.get('location');
      if (page.status >= 300 && page.status < 400 && loc) {
        page = await this.request(new URL(loc, page.url).toString());
        continue;
      }
      const form = /<form[^>]*action="([^"]+)"[^>]*method="post"[\s\S]*?<\/form>/i.exec(page.body);
      if (page.status === 200 && form && opts.login) {
        const fields = new URLSearchParams();
        for (const m of form[0].matchAll(/<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"/g))
          fields.set(m[1]!, m[2]!);
        if (/name="login"/.test(form[0])) {
          fields.set('login', opts.login);
          fields.set('password', 'any');
        }
        page = await this.request(new URL(form[1]!.replace(/&amp;/g, '&'), page.url).toString(), {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', origin: new URL(page.url).origin },
          body: fields.toString(),
        });
        continue;
      }
      return page;
    }
    throw new Error(`too many steps; last page ${page.url} (${page.status})`);
  }
}
