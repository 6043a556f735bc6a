// The page's only way to the server: the public API, as any client uses it. Paths are relative to the page, so
// a reverse proxy's prefix is kept. With --api-auth the browser asked for credentials when it loaded the page
// and sends them again with every request to the same server, so nothing here handles them.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// What went wrong, from A1111's envelope {error, detail, body, errors} or FastAPI's validation list.
function errorMessage(status, body) {
  if (body && typeof body === "object") {
    if (Array.isArray(body.detail)) {
      return body.detail.map((item) => `${(item.loc || []).join(".")}: ${item.msg}`).join("; ");
    }
    const text = body.errors || body.detail;
    if (text) return `${body.error || "Error"}: ${typeof text === "string" ? text : JSON.stringify(text)}`;
  }
  return `HTTP ${status}${typeof body === "string" && body ? `: ${body}` : ""}`;
}

export async function request(method, path, body) {
  const init = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let data = text;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    // not JSON (a plain-text error from a proxy, say): keep the text for the message
  }
  if (!response.ok) throw new ApiError(response.status, errorMessage(response.status, data));
  return data;
}

export const get = (path) => request("GET", path);
export const post = (path, body = {}) => request("POST", path, body);
