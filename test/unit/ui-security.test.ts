import { describe, expect, it } from 'vitest';
import { escapeHtml, html, jsonScript } from '../../src/ui/html.js';
import { hostAllowed, isLoopback, sameOrigin, secretsEqual } from '../../src/ui/security.js';

describe('web UI guards', () => {
  it('accepts only a Host naming the bind address and port (no DNS rebinding)', () => {
    expect(hostAllowed('127.0.0.1:4141', '127.0.0.1', 4141)).toBe(true);
    expect(hostAllowed('localhost:4141', '127.0.0.1', 4141)).toBe(true);
    expect(hostAllowed('127.0.0.1:4142', '127.0.0.1', 4141)).toBe(false);
    expect(hostAllowed('attacker.example:4141', '127.0.0.1', 4141)).toBe(false);
    expect(hostAllowed(undefined, '127.0.0.1', 4141)).toBe(false);
    expect(hostAllowed('[::1]:4141', '::1', 4141)).toBe(true);
    expect(hostAllowed('10.0.0.5:4141', '10.0.0.5', 4141)).toBe(true);
    expect(hostAllowed('intranet.example:4141', '10.0.0.5', 4141)).toBe(false);
    // A wildcard bind takes IP literals only: a name could rebind to this machine.
    expect(hostAllowed('192.168.1.9:4141', '0.0.0.0', 4141)).toBe(true);
    expect(hostAllowed('attacker.example:4141', '0.0.0.0', 4141)).toBe(false);
    expect(hostAllowed('127.0.0.1', '127.0.0.1', 80)).toBe(true);
  });

  it('takes a change only from a page of the same origin', () => {
    const host = '127.0.0.1:4141';
    expect(sameOrigin({ host, origin: 'http://127.0.0.1:4141' })).toBe(true);
    expect(sameOrigin({ host, origin: 'http://127.0.0.1:9999' })).toBe(false);
    expect(sameOrigin({ host, origin: 'null' })).toBe(false);
    expect(sameOrigin({ host, referer: 'http://127.0.0.1:4141/activations/x' })).toBe(true);
    expect(sameOrigin({ host, referer: 'http://evil.example/' })).toBe(false);
    expect(sameOrigin({ host })).toBe(false);
    expect(sameOrigin({ host, origin: 'http://127.0.0.1:4141', 'sec-fetch-site': 'cross-site' })).toBe(false);
  });

  it('compares secrets of any length without throwing', () => {
    expect(secretsEqual('token', 'token')).toBe(true);
    expect(secretsEqual('token', 'tokeN')).toBe(false);
    expect(secretsEqual('', 'token')).toBe(false);
    expect(secretsEqual('a-much-longer-guess-than-the-token', 'token')).toBe(false);
  });

  it('knows loopback addresses', () => {
    expect(isLoopback('127.0.0.1')).toBe(true);
    expect(isLoopback('127.1.2.3')).toBe(true);
    expect(isLoopback('::1')).toBe(true);
    expect(isLoopback('localhost')).toBe(true);
    expect(isLoopback('0.0.0.0')).toBe(false);
    expect(isLoopback('10.0.0.1')).toBe(false);
  });

  it('escapes every value put in a page, and JSON cannot close its script element', () => {
    const name = `<script>alert("x")</script>&'`;
    expect(html`<td>${name}</td>`.text).toBe(
      '<td>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;</td>',
    );
    // (Prettier lays out html`` templates as HTML: compare without the whitespace between tags.)
    const list = html`<ul>
      ${[1, 2].map((n) => html`<li>${n}</li>`)}
    </ul>`;
    expect(list.text.replace(/>\s+</g, '><').trim()).toBe('<ul><li>1</li><li>2</li></ul>');
    expect(escapeHtml('a"b')).toBe('a&quot;b');
    expect(jsonScript('d', { s: '</script><b>' }).text).not.toContain('</script><b>');
  });
});
