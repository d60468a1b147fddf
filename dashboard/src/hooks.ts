import { useEffect, useState } from 'preact/hooks';

/**
 * The content width of an element, followed as it resizes (0 until it is laid out). Returns a ref
 * callback to put on the element, the width, and the element.
 */
export function useWidth<T extends HTMLElement>(): [(el: T | null) => void, number, T | null] {
  const [el, setEl] = useState<T | null>(null);
  const [width, setWidth] = useState(0);
  useEffect(() => {
    if (!el) return;
    setWidth(el.clientWidth);
    const observer = new ResizeObserver(() => setWidth(el.clientWidth));
    observer.observe(el);
    return () => observer.disconnect();
  }, [el]);
  return [setEl, width, el];
}
