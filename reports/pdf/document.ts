// A small layout engine over pdfkit for evidence documents: running header, footer with the
// data hash and "page x of y" on every page, numbered sections with a contents list, key/value
// panels, summary tiles, tables that paginate with repeated headers, and vector charts.
// Deterministic: the same content and generatedAt give the same bytes (evidence bundles rely on it).
//
// Two passes keep large reports fast and small: a measuring pass lays everything out (table row
// heights, page count, contents page numbers) while discarding output; the drawing pass reuses
// those measurements, draws header and footer ("page x of y" known) as each page starts, and
// lets pdfkit write every finished page out at once instead of holding the whole document.
import PDFDocument from 'pdfkit';
import { fontPath, FONT_FILES, type FontName } from './fonts.ts';
import type { RunInfo } from '../run-exceptions.ts';

export const COLORS = {
  ink: '#1b2430',
  muted: '#5b6673',
  faint: '#8a94a0',
  rule: '#d5dbe2',
  band: '#f3f5f8',
  head: '#e8edf3',
  accent: '#1f4e79',
  accentLight: '#dbe6f1',
  ok: '#2e7d32',
  warn: '#b26a00',
  bad: '#b3261e',
  series: [
    '#1f4e79',
    '#5a8fc0',
    '#9cc0e3',
    '#b3261e',
    '#e39a9a',
    '#6a994e',
    '#a7c957',
    '#b26a00',
    '#f2c57c',
    '#6c5b7b',
  ],
};

export interface DocMeta {
  title: string;
  /** Short running title for page headers. */
  shortTitle: string;
  reportId: string;
  dataHash: string;
  /** Fixed document dates: keeps the PDF byte-identical across re-runs of the same data. */
  generatedAt: string;
  subject?: string;
  keywords?: string;
}

export interface Column<T> {
  header: string;
  /** Relative width; columns share the available width in proportion. */
  width: number;
  value: (row: T) => string;
  align?: 'left' | 'right' | 'center';
  mono?: boolean;
  /** Colour for a cell (e.g. red for "revoke"). */
  color?: (row: T) => string | undefined;
  bold?: (row: T) => boolean;
}

export interface TableOptions {
  fontSize?: number;
  /** Repeated on every continuation page, e.g. "Entitlements (continued)". */
  caption?: string;
  zebra?: boolean;
  emptyText?: string;
}

interface TocEntry {
  title: string;
  page: number;
}

/** What the measuring pass learnt; the drawing pass follows it. */
export interface LayoutPlan {
  pages: number;
  tocPages: number[];
  /** Per table row, in document order: its height and which cells wrap (bit per column). */
  rows: Array<{ h: number; wrap: number }>;
}

export class LayoutMismatchError extends Error {
  override name = 'LayoutMismatchError';
}

type PageLayout = 'portrait' | 'landscape';

const MARGIN = { top: 58, bottom: 54, left: 48, right: 48 };

export class ReportPdf {
  readonly doc: PDFKit.PDFDocument;
  private readonly toc: TocEntry[] = [];
  private layout: PageLayout = 'portrait';
  private pageCount = 0;
  private coverPending = false;
  private readonly coverPages = new Set<number>();
  private readonly measuring: boolean;
  private readonly rows: LayoutPlan['rows'] = [];
  private rowCursor = 0;
  private readonly chunks: Buffer[] = [];
  private readonly ended: Promise<void>;

  constructor(
    readonly meta: DocMeta,
    private readonly plan?: LayoutPlan,
  ) {
    this.measuring = !plan;
    const date = new Date(meta.generatedAt);
    this.doc = new PDFDocument({
      autoFirstPage: false,
      bufferPages: false,
      size: 'A4',
      margins: MARGIN,
      compress: true,
      info: {
        Title: meta.title,
        Author: 'auditgate',
        Creator: 'auditgate report generator',
        Producer: 'auditgate (pdfkit)',
        Subject: meta.subject ?? meta.title,
        Keywords: meta.keywords ?? '',
        CreationDate: date,
        ModDate: date,
      },
      displayTitle: true,
      lang: 'en',
    });
    // The measuring pass discards its bytes; the drawing pass collects them as pages finish.
    this.doc.on('data', (c: Buffer) => {
      if (!this.measuring) this.chunks.push(c);
    });
    this.ended = new Promise<void>((resolve, reject) => {
      this.doc.on('end', () => resolve());
      this.doc.on('error', reject);
    });
    for (const name of Object.keys(FONT_FILES) as FontName[]) this.doc.registerFont(name, fontPath(name));
    this.doc.font('regular');
    this.doc.on('pageAdded', () => {
      this.pageCount++;
      if (this.coverPending) {
        this.coverPages.add(this.pageCount - 1);
        this.coverPending = false;
      }
      if (!this.measuring) this.decorate(this.pageCount - 1);
    });
  }

  get pageWidth(): number {
    return this.doc.page.width - MARGIN.left - MARGIN.right;
  }

  get bottom(): number {
    return this.doc.page.height - MARGIN.bottom;
  }

  get pageIndex(): number {
    return this.pageCount - 1;
  }

  newPage(layout: PageLayout = this.layout): void {
    this.layout = layout;
    this.doc.addPage({ size: 'A4', layout, margins: MARGIN });
    this.doc.x = MARGIN.left;
    this.doc.y = MARGIN.top;
  }

  /** Moves to a new page when fewer than `h` points remain. */
  ensureSpace(h: number): void {
    if (this.doc.y + h > this.bottom) this.newPage();
  }

  // ---- cover -------------------------------------------------------------------------------

  cover(opts: {
    kicker: string;
    title: string;
    subtitle: string;
    facts: Array<[string, string]>;
    controls: Array<{ id: string; topic: string }>;
    contents: string[];
    notice: string;
  }): void {
    this.coverPending = true;
    this.newPage('portrait');
    const d = this.doc;
    const w = this.pageWidth;
    d.rect(0, 0, d.page.width, 10).fill(COLORS.accent);
    d.fillColor(COLORS.accent)
      .font('bold')
      .fontSize(9)
      .text(opts.kicker.toUpperCase(), MARGIN.left, 72, { characterSpacing: 1.2 });
    d.moveDown(0.6);
    d.fillColor(COLORS.ink).font('bold').fontSize(24).text(opts.title, { width: w });
    d.moveDown(0.2);
    d.fillColor(COLORS.muted).font('regular').fontSize(12).text(opts.subtitle, { width: w });
    d.moveDown(1.2);
    this.rule();
    d.moveDown(0.8);
    this.keyValues(opts.facts, { labelWidth: 150, fontSize: 9.5 });
    d.moveDown(0.8);
    this.smallHeading('Trust Services Criteria covered');
    for (const c of opts.controls) {
      const y = d.y;
      d.font('bold').fontSize(9.5).fillColor(COLORS.accent).text(c.id, MARGIN.left, y, { width: 60 });
      d.font('regular')
        .fillColor(COLORS.ink)
        .text(c.topic, MARGIN.left + 60, y, { width: w - 60 });
      d.moveDown(0.3);
    }
    d.moveDown(0.8);
    this.smallHeading('Contents');
    opts.contents.forEach((title, index) => {
      const y = d.y;
      d.font('regular')
        .fontSize(9.5)
        .fillColor(COLORS.ink)
        .text(`${index + 1}.  ${title}`, MARGIN.left, y, { width: w - 60 });
      const page = this.plan?.tocPages[index];
      if (page !== undefined) {
        d.fillColor(COLORS.muted).text(String(page + 1), MARGIN.left + w - 60, y, {
          width: 60,
          align: 'right',
          lineBreak: false,
        });
      }
      d.x = MARGIN.left;
      d.y = y + d.currentLineHeight(true);
      d.moveDown(0.15);
    });
    // The notice sits at the bottom of the cover, above the footer.
    d.font('italic').fontSize(8).fillColor(COLORS.muted);
    const h = d.heightOfString(opts.notice, { width: w });
    d.text(opts.notice, MARGIN.left, this.bottom - h - 6, { width: w });
  }

  // ---- text blocks -------------------------------------------------------------------------

  /** A numbered section; starts a new page. Its page number goes into the contents list. */
  section(title: string, layout: PageLayout = 'portrait'): void {
    this.newPage(layout);
    this.toc.push({ title, page: this.pageIndex });
    const n = this.toc.length;
    this.doc.outline.addItem(`${n}. ${title}`);
    this.doc
      .font('bold')
      .fontSize(15)
      .fillColor(COLORS.accent)
      .text(`${n}.  ${title}`, MARGIN.left, this.doc.y);
    this.doc.moveDown(0.25);
    this.rule(COLORS.accent, 1);
    this.doc.moveDown(0.6);
  }

  heading(text: string): void {
    this.ensureSpace(60);
    this.doc.moveDown(0.4);
    this.doc
      .font('bold')
      .fontSize(11)
      .fillColor(COLORS.ink)
      .text(text, MARGIN.left, this.doc.y, { width: this.pageWidth });
    this.doc.moveDown(0.3);
  }

  smallHeading(text: string): void {
    this.doc
      .font('bold')
      .fontSize(8.5)
      .fillColor(COLORS.muted)
      .text(text.toUpperCase(), MARGIN.left, this.doc.y, {
        characterSpacing: 0.8,
      });
    this.doc.moveDown(0.35);
  }

  para(text: string, opts: { size?: number; color?: string; italic?: boolean } = {}): void {
    this.doc
      .font(opts.italic ? 'italic' : 'regular')
      .fontSize(opts.size ?? 9)
      .fillColor(opts.color ?? COLORS.ink);
    this.ensureSpace(Math.min(this.doc.heightOfString(text, { width: this.pageWidth }), 200));
    this.doc.text(text, MARGIN.left, this.doc.y, { width: this.pageWidth, lineGap: 1.5 });
    this.doc.moveDown(0.5);
  }

  bullets(items: string[], size = 9): void {
    for (const item of items) {
      this.doc.font('regular').fontSize(size).fillColor(COLORS.ink);
      const h = this.doc.heightOfString(item, { width: this.pageWidth - 14 });
      this.ensureSpace(h + 2);
      const y = this.doc.y;
      this.doc.circle(MARGIN.left + 4, y + size * 0.55, 1.6).fill(COLORS.accent);
      this.doc
        .fillColor(COLORS.ink)
        .text(item, MARGIN.left + 14, y, { width: this.pageWidth - 14, lineGap: 1 });
      this.doc.moveDown(0.25);
    }
    this.doc.x = MARGIN.left;
    this.doc.moveDown(0.3);
  }

  rule(color = COLORS.rule, width = 0.6): void {
    const y = this.doc.y;
    this.doc
      .moveTo(MARGIN.left, y)
      .lineTo(MARGIN.left + this.pageWidth, y)
      .lineWidth(width)
      .strokeColor(color)
      .stroke();
  }

  keyValues(
    rows: Array<[string, string]>,
    opts: { labelWidth?: number; fontSize?: number; monoValues?: boolean } = {},
  ): void {
    const lw = opts.labelWidth ?? 160;
    const fs = opts.fontSize ?? 9;
    for (const [k, v] of rows) {
      const mono = opts.monoValues || /^[0-9a-f]{40,}$/.test(v);
      this.doc.font(mono ? 'mono' : 'regular').fontSize(mono ? fs - 1 : fs);
      const hv = this.doc.heightOfString(v || '—', { width: this.pageWidth - lw });
      this.doc.font('bold').fontSize(fs);
      const h = Math.max(hv, this.doc.heightOfString(k, { width: lw - 8 }), fs * 1.2);
      this.ensureSpace(h + 3);
      const y = this.doc.y;
      this.doc
        .font('bold')
        .fontSize(fs)
        .fillColor(COLORS.muted)
        .text(k, MARGIN.left, y, { width: lw - 8 });
      this.doc
        .font(mono ? 'mono' : 'regular')
        .fontSize(mono ? fs - 1 : fs)
        .fillColor(COLORS.ink)
        .text(v || '—', MARGIN.left + lw, y, { width: this.pageWidth - lw });
      this.doc.y = Math.max(this.doc.y, y + h) + 3;
    }
    this.doc.x = MARGIN.left;
    this.doc.moveDown(0.3);
  }

  /** A row of summary tiles: big number, label, optional note. */
  tiles(
    items: Array<{ label: string; value: string; note?: string; tone?: 'ok' | 'warn' | 'bad' }>,
    perRow = 4,
  ): void {
    const gap = 8;
    const w = (this.pageWidth - gap * (perRow - 1)) / perRow;
    const h = 60;
    for (let i = 0; i < items.length; i += perRow) {
      this.ensureSpace(h + gap);
      const y = this.doc.y;
      items.slice(i, i + perRow).forEach((it, j) => {
        const x = MARGIN.left + j * (w + gap);
        this.doc.roundedRect(x, y, w, h, 3).fill(COLORS.band);
        const tone = it.tone ? COLORS[it.tone] : COLORS.accent;
        this.doc.rect(x, y, 3, h).fill(tone);
        this.doc
          .font('bold')
          .fontSize(17)
          .fillColor(COLORS.ink)
          .text(it.value, x + 10, y + 7, { width: w - 14, lineBreak: false });
        this.doc
          .font('regular')
          .fontSize(7.8)
          .fillColor(COLORS.muted)
          .text(it.label, x + 10, y + 29, { width: w - 14, lineBreak: false });
        if (it.note) {
          this.doc
            .fontSize(6.8)
            .fillColor(COLORS.faint)
            .text(it.note, x + 10, y + 40, { width: w - 14, height: 18, ellipsis: true });
        }
      });
      this.doc.y = y + h + gap;
    }
    this.doc.x = MARGIN.left;
    this.doc.moveDown(0.3);
  }

  // ---- tables ------------------------------------------------------------------------------

  table<T>(columns: Column<T>[], rows: readonly T[], opts: TableOptions = {}): void {
    const fs = opts.fontSize ?? 7.5;
    const pad = 3;
    const total = columns.reduce((s, c) => s + c.width, 0);
    const widths = columns.map((c) => (c.width / total) * this.pageWidth);
    const xs = widths.map((_, i) => MARGIN.left + widths.slice(0, i).reduce((s, w) => s + w, 0));
    const d = this.doc;

    const headerHeight = () => {
      d.font('condensedBold').fontSize(fs);
      return (
        Math.max(...columns.map((c, i) => d.heightOfString(c.header, { width: widths[i]! - 2 * pad }))) +
        2 * pad
      );
    };
    const drawHeader = (continued: boolean) => {
      if (continued && opts.caption) {
        d.font('italic')
          .fontSize(7.5)
          .fillColor(COLORS.muted)
          .text(`${opts.caption} (continued)`, MARGIN.left, d.y);
        d.moveDown(0.3);
      }
      const h = headerHeight();
      const y = d.y;
      d.rect(MARGIN.left, y, this.pageWidth, h).fill(COLORS.head);
      d.font('condensedBold').fontSize(fs).fillColor(COLORS.ink);
      columns.forEach((c, i) => {
        d.text(c.header, xs[i]! + pad, y + pad, { width: widths[i]! - 2 * pad, align: c.align ?? 'left' });
      });
      d.moveTo(MARGIN.left, y + h)
        .lineTo(MARGIN.left + this.pageWidth, y + h)
        .lineWidth(0.8)
        .strokeColor(COLORS.accent)
        .stroke();
      d.y = y + h;
    };

    this.ensureSpace(headerHeight() + fs * 3);
    drawHeader(false);
    if (rows.length === 0) {
      d.font('italic')
        .fontSize(fs)
        .fillColor(COLORS.muted)
        .text(opts.emptyText ?? 'None.', MARGIN.left + pad, d.y + pad);
      d.y += pad;
      d.moveDown(0.8);
      d.x = MARGIN.left;
      return;
    }
    rows.forEach((row, r) => {
      const texts = columns.map((c) => c.value(row));
      const fontOf = (c: Column<T>) => (c.mono ? 'mono' : c.bold?.(row) ? 'condensedBold' : 'condensed');
      const sizeOf = (c: Column<T>) => (c.mono ? fs - 0.5 : fs);
      let h: number;
      let wrap = 0;
      if (this.measuring) {
        // A cell that fits on one line needs no line wrapping, neither to measure nor to draw.
        let max = 0;
        columns.forEach((c, i) => {
          const text = texts[i] || ' ';
          d.font(fontOf(c)).fontSize(sizeOf(c));
          const avail = widths[i]! - 2 * pad;
          let ch: number;
          if (!text.includes('\n') && this.fastWidth(fontOf(c), sizeOf(c), text) <= avail - 0.5) {
            ch = d.currentLineHeight(true);
          } else {
            ch = d.heightOfString(text, { width: avail });
            wrap |= 1 << i;
          }
          if (ch > max) max = ch;
        });
        h = max + 2 * pad;
        this.rows.push({ h, wrap });
      } else {
        const planned = this.plan!.rows[this.rowCursor++];
        if (!planned)
          throw new LayoutMismatchError('the drawing pass has more table rows than the measuring pass');
        h = planned.h;
        wrap = planned.wrap;
      }
      if (d.y + h > this.bottom) {
        this.newPage();
        drawHeader(true);
      }
      const y = d.y;
      if (!this.measuring) {
        if (opts.zebra !== false && r % 2 === 1) d.rect(MARGIN.left, y, this.pageWidth, h).fill(COLORS.band);
        let font = '';
        let size = 0;
        let color = '';
        columns.forEach((c, i) => {
          const text = texts[i] ?? '';
          if (!text) return;
          // Only state changes are written: most cells share font, size and colour.
          const f = fontOf(c);
          const z = sizeOf(c);
          const col = c.color?.(row) ?? COLORS.ink;
          if (f !== font) d.font((font = f));
          if (z !== size) d.fontSize((size = z));
          if (col !== color) d.fillColor((color = col));
          const avail = widths[i]! - 2 * pad;
          if (wrap & (1 << i)) {
            d.text(text, xs[i]! + pad, y + pad, { width: avail, align: c.align ?? 'left' });
          } else {
            const tw = c.align === 'right' || c.align === 'center' ? this.fastWidth(f, z, text) : 0;
            const x =
              xs[i]! + pad + (c.align === 'right' ? avail - tw : c.align === 'center' ? (avail - tw) / 2 : 0);
            d.text(text, x, y + pad, { lineBreak: false });
          }
        });
        d.moveTo(MARGIN.left, y + h)
          .lineTo(MARGIN.left + this.pageWidth, y + h)
          .lineWidth(0.3)
          .strokeColor(COLORS.rule)
          .stroke();
      }
      d.y = y + h;
    });
    d.x = MARGIN.left;
    d.moveDown(0.8);
  }

  // ---- charts ------------------------------------------------------------------------------

  /** Vertical stacked bars over time (e.g. calls per day: allowed / denied). */
  timeChart(opts: {
    title: string;
    labels: string[];
    series: Array<{ name: string; values: number[]; color: string }>;
    height?: number;
    /** Show every n-th x label. */
    labelEvery?: number;
  }): void {
    const d = this.doc;
    const height = opts.height ?? 170;
    this.ensureSpace(height + 50);
    this.smallHeading(opts.title);
    const top = d.y + 4;
    const left = MARGIN.left + 42;
    const width = this.pageWidth - 42;
    const n = Math.max(1, opts.labels.length);
    const totals = opts.labels.map((_, i) => opts.series.reduce((s, se) => s + (se.values[i] ?? 0), 0));
    const max = niceMax(Math.max(1, ...totals));
    const plotH = height - 24;
    // grid and y axis labels
    for (let k = 0; k <= 4; k++) {
      const v = (max / 4) * k;
      const y = top + plotH - (plotH * k) / 4;
      d.moveTo(left, y)
        .lineTo(left + width, y)
        .lineWidth(0.4)
        .strokeColor(k === 0 ? COLORS.muted : COLORS.rule)
        .stroke();
      d.font('condensed')
        .fontSize(6.5)
        .fillColor(COLORS.muted)
        .text(formatCount(v), MARGIN.left, y - 3.5, { width: 38, align: 'right' });
    }
    const slot = width / n;
    const bw = Math.max(0.6, slot * 0.72);
    opts.labels.forEach((label, i) => {
      let base = top + plotH;
      for (const se of opts.series) {
        const v = se.values[i] ?? 0;
        if (v <= 0) continue;
        const h = (plotH * v) / max;
        d.rect(left + i * slot + (slot - bw) / 2, base - h, bw, h).fill(se.color);
        base -= h;
      }
      const every = opts.labelEvery ?? Math.ceil(n / 12);
      if (i % every === 0) {
        d.font('condensed')
          .fontSize(6.5)
          .fillColor(COLORS.muted)
          .text(label, left + i * slot - 20 + slot / 2, top + plotH + 4, {
            width: 40,
            align: 'center',
            lineBreak: false,
          });
      }
    });
    this.legend(opts.series, top + plotH + 14);
    d.y = top + height + 8;
    d.x = MARGIN.left;
  }

  /** Horizontal bars, one per category (e.g. calls per target), optionally stacked. */
  barChart(opts: {
    title: string;
    rows: Array<{ label: string; values: number[] }>;
    series: Array<{ name: string; color: string }>;
  }): void {
    const d = this.doc;
    if (opts.rows.length === 0) {
      this.smallHeading(opts.title);
      d.font('italic').fontSize(8).fillColor(COLORS.muted).text('No data in this period.', MARGIN.left, d.y);
      d.moveDown(0.8);
      return;
    }
    const barH = 11;
    const gap = 5;
    const height = opts.rows.length * (barH + gap) + 24;
    this.ensureSpace(Math.min(height, 400) + 30);
    this.smallHeading(opts.title);
    const labelW = 120;
    const left = MARGIN.left + labelW;
    const width = this.pageWidth - labelW - 60;
    const max = niceMax(Math.max(1, ...opts.rows.map((r) => r.values.reduce((s, v) => s + v, 0))));
    let y = d.y + 2;
    for (const row of opts.rows) {
      if (y + barH > this.bottom - 20) {
        this.newPage();
        y = d.y;
      }
      d.font('condensed')
        .fontSize(7.5)
        .fillColor(COLORS.ink)
        .text(row.label, MARGIN.left, y + 1.5, { width: labelW - 6, align: 'right', lineBreak: false });
      let x = left;
      row.values.forEach((v, i) => {
        const w = (width * v) / max;
        if (w > 0) d.rect(x, y, w, barH).fill(opts.series[i]?.color ?? COLORS.accent);
        x += w;
      });
      const total = row.values.reduce((s, v) => s + v, 0);
      d.font('condensed')
        .fontSize(7)
        .fillColor(COLORS.muted)
        .text(formatCount(total), x + 4, y + 2, { width: 56, lineBreak: false });
      y += barH + gap;
    }
    d.moveTo(left, d.y)
      .lineTo(left, y - gap)
      .lineWidth(0.5)
      .strokeColor(COLORS.muted)
      .stroke();
    if (opts.series.length > 1) this.legend(opts.series, y + 2);
    d.y = y + (opts.series.length > 1 ? 16 : 4);
    d.x = MARGIN.left;
  }

  private legend(series: Array<{ name: string; color: string }>, y: number): void {
    let x = MARGIN.left + 42;
    for (const se of series) {
      this.doc.rect(x, y + 1, 7, 7).fill(se.color);
      this.doc.font('condensed').fontSize(7).fillColor(COLORS.muted);
      const w = this.doc.widthOfString(se.name);
      this.doc.text(se.name, x + 10, y, { lineBreak: false });
      x += w + 24;
    }
  }

  // ---- finishing ---------------------------------------------------------------------------

  private readonly advance = new Map<string, Map<string, number>>();

  /**
   * Width of a one-line string from cached per-character advances (no kerning or ligatures,
   * which only ever narrow DejaVu text): cheap enough for every cell of a large table. The
   * current font must be `fontName`.
   */
  private fastWidth(fontName: string, size: number, text: string): number {
    let m = this.advance.get(fontName);
    if (!m) this.advance.set(fontName, (m = new Map()));
    const font = (this.doc as unknown as { _font: { widthOfString(s: string, size: number): number } })._font;
    let w = 0;
    for (const ch of text) {
      let cw = m.get(ch);
      if (cw === undefined) m.set(ch, (cw = font.widthOfString(ch, 1000)));
      w += cw;
    }
    return (w * size) / 1000;
  }

  /** Running header (not on the cover) and the footer: data hash and page x of y. */
  private decorate(i: number): void {
    const d = this.doc as PDFKit.PDFDocument & {
      _font: unknown;
      _fontSize: number;
      _fillColor?: [string, number];
    };
    // This runs when a page starts, possibly in the middle of flowing text: keep its state.
    const saved = {
      x: d.x,
      y: d.y,
      font: d._font,
      size: d._fontSize,
      fill: d._fillColor,
      margins: { ...d.page.margins },
    };
    // Writing into the margins would make pdfkit start a new page: lift them while we draw.
    d.page.margins = { top: 0, bottom: 0, left: 0, right: 0 };
    const w = d.page.width;
    const h = d.page.height;
    if (!this.coverPages.has(i)) {
      d.font('regular').fontSize(7.5).fillColor(COLORS.muted);
      // The report id is kept whole (it names the report); the title, also on the cover, yields.
      // Periods with timestamps (evidence bundles) make both long.
      const right = `Report ${this.meta.reportId}`;
      const rightW = d.widthOfString(right);
      const titleRoom = w - MARGIN.left - MARGIN.right - rightW - 12;
      d.text(fitWidth(this.meta.shortTitle, titleRoom, (t) => d.widthOfString(t)), MARGIN.left, 30, {
        lineBreak: false,
      });
      d.text(right, w - MARGIN.right - rightW, 30, { lineBreak: false });
      d.moveTo(MARGIN.left, 42)
        .lineTo(w - MARGIN.right, 42)
        .lineWidth(0.4)
        .strokeColor(COLORS.rule)
        .stroke();
    }
    const fy = h - MARGIN.bottom + 16;
    d.moveTo(MARGIN.left, fy - 6)
      .lineTo(w - MARGIN.right, fy - 6)
      .lineWidth(0.4)
      .strokeColor(COLORS.rule)
      .stroke();
    d.font('regular')
      .fontSize(6.5)
      .fillColor(COLORS.muted)
      .text('Data SHA-256', MARGIN.left, fy, { lineBreak: false });
    const labelW = d.widthOfString('Data SHA-256') + 5;
    d.font('mono')
      .fontSize(6.5)
      .fillColor(COLORS.ink)
      .text(this.meta.dataHash, MARGIN.left + labelW, fy, { lineBreak: false });
    const pageText = `Page ${i + 1} of ${this.plan!.pages}`;
    d.font('regular').fontSize(7.5).fillColor(COLORS.muted);
    d.text(pageText, w - MARGIN.right - d.widthOfString(pageText), fy - 1, { lineBreak: false });
    d.font('regular')
      .fontSize(6.5)
      .fillColor(COLORS.faint)
      .text(`Generated ${this.meta.generatedAt} by auditgate · confidential`, MARGIN.left, fy + 10, {
        lineBreak: false,
      });
    d.page.margins = saved.margins;
    d._font = saved.font;
    d._fontSize = saved.size;
    if (saved.fill) d.fillColor(...saved.fill);
    d.x = saved.x;
    d.y = saved.y;
  }

  /** Measuring pass: the plan. */
  async measure(): Promise<LayoutPlan> {
    this.doc.end();
    await this.ended;
    return { pages: this.pageCount, tocPages: this.toc.map((e) => e.page), rows: this.rows };
  }

  /** Drawing pass: the bytes. */
  async finish(): Promise<Buffer> {
    if (this.pageCount !== this.plan?.pages || this.rowCursor !== this.plan.rows.length) {
      throw new LayoutMismatchError(
        `the drawing pass made ${this.pageCount} pages, the measuring pass ${this.plan?.pages}`,
      );
    }
    this.doc.end();
    await this.ended;
    return Buffer.concat(this.chunks);
  }
}

/** Renders a document in two passes (see the top of this file). `draw` must be deterministic. */
export async function renderDocument(meta: DocMeta, draw: (pdf: ReportPdf) => void): Promise<Buffer> {
  const measuring = new ReportPdf(meta);
  draw(measuring);
  const plan = await measuring.measure();
  const drawing = new ReportPdf(meta, plan);
  draw(drawing);
  return drawing.finish();
}

function niceMax(v: number): number {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

export function formatCount(v: number): string {
  if (v >= 1_000_000) return `${(v / 1_000_000).toFixed(v % 1_000_000 === 0 ? 0 : 1)}M`;
  if (v >= 10_000) return `${(v / 1000).toFixed(v % 1000 === 0 ? 0 : 1)}k`;
  return Number.isInteger(v) ? v.toLocaleString('en-US') : v.toFixed(1);
}

/** 2026-07-01T00:00:00.000Z → 2026-07-01 00:00 UTC */
export function fmtTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  return `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`;
}

export function fmtDate(iso: string | null | undefined): string {
  return iso ? iso.slice(0, 10) : '—';
}

/** The cover's "Period" line, the same words on every report. */
export function periodFact(p: { label: string; start: string; end: string }): [string, string] {
  return ['Period', `${p.label} (${fmtTime(p.start)} – ${fmtTime(p.end)}, end exclusive)`];
}

/** The cover lines every report ends with: how it was produced, what it read and its data hash. */
export function provenanceFacts(
  run: RunInfo,
  generator: { name: string; version: string },
  treeSize: number,
  dataHash: string,
): Array<[string, string]> {
  return [
    ['Generated at', fmtTime(run.generatedAt)],
    ['Generator', `${generator.name} ${generator.version}`],
    [
      'Schedule',
      run.schedule
        ? `${run.schedule} (${run.timezone ?? 'UTC'})${run.expectedAt ? `, expected ${fmtTime(run.expectedAt)}` : ''}`
        : `on demand (${run.trigger})`,
    ],
    ['Run id', run.runId ?? '—'],
    ['Audit log checkpoint', `tree size ${treeSize.toLocaleString('en-US')}`],
    ['Data SHA-256', dataHash],
  ];
}

/** `text`, cut at the end with an ellipsis where it is wider than `max` points. */
export function fitWidth(text: string, max: number, width: (t: string) => number): string {
  if (width(text) <= max) return text;
  let lo = 0;
  let hi = text.length;
  // The longest prefix that fits with the ellipsis.
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (width(text.slice(0, mid).trimEnd() + '…') <= max) lo = mid;
    else hi = mid - 1;
  }
  return lo > 0 ? text.slice(0, lo).trimEnd() + '…' : '';
}
