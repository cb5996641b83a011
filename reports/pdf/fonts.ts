// Embedded fonts for report PDFs. pdfkit's standard 14 fonts are not embedded (a PDF/A
// validator and some auditors' viewers reject them) and cover only Latin-1; DejaVu ships as an
// npm package (dejavu-fonts-ttf, Bitstream Vera licence: free to embed and redistribute).
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { existsSync } from 'node:fs';

const require = createRequire(import.meta.url);

export const FONT_FILES = {
  regular: 'DejaVuSans.ttf',
  bold: 'DejaVuSans-Bold.ttf',
  italic: 'DejaVuSans-Oblique.ttf',
  light: 'DejaVuSans-ExtraLight.ttf',
  condensed: 'DejaVuSansCondensed.ttf',
  condensedBold: 'DejaVuSansCondensed-Bold.ttf',
  mono: 'DejaVuSansMono.ttf',
} as const;

export type FontName = keyof typeof FONT_FILES;

export class FontMissingError extends Error {
  override name = 'FontMissingError';
}

let dir: string | undefined;

export function fontDir(): string {
  if (dir) return dir;
  let pkg: string;
  try {
    pkg = require.resolve('dejavu-fonts-ttf/package.json');
  } catch (err) {
    throw new FontMissingError('the dejavu-fonts-ttf package is not installed (npm install)', { cause: err });
  }
  dir = join(dirname(pkg), 'ttf');
  for (const f of Object.values(FONT_FILES)) {
    if (!existsSync(join(dir, f))) throw new FontMissingError(`font file missing: ${join(dir, f)}`);
  }
  return dir;
}

export function fontPath(name: FontName): string {
  return join(fontDir(), FONT_FILES[name]);
}
