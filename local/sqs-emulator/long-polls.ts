/**
 * Parked long polls, per queue. A ReceiveMessage that found nothing waits here until the queue changes
 * (a send, a visibility change, a message moved in), until the next hidden message's deadline, or until
 * it is aborted — then it looks again. Nothing polls: a waiter costs one timer.
 * https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-short-and-long-polling.html
 */
export class LongPolls {
  private readonly waiting = new Map<number, Set<() => void>>();

  /** Resolves when `queueId` is notified, at `until` (epoch ms), or when `signal` aborts. */
  wait(queueId: number, until: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) {
        resolve();
        return;
      }
      let waiters = this.waiting.get(queueId);
      if (!waiters) {
        waiters = new Set();
        this.waiting.set(queueId, waiters);
      }
      const queueWaiters = waiters;
      const wake = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', wake);
        queueWaiters.delete(wake);
        if (queueWaiters.size === 0 && this.waiting.get(queueId) === queueWaiters)
          this.waiting.delete(queueId);
        resolve();
      };
      const timer = setTimeout(wake, Math.max(0, until - Date.now()));
      signal.addEventListener('abort', wake, { once: true });
      queueWaiters.add(wake);
    });
  }

  /** Wakes every poll waiting on `queueId`. */
  notify(queueId: number): void {
    for (const wake of [...(this.waiting.get(queueId) ?? [])]) wake();
  }
}
