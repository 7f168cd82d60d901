-- keyrouter's shared state in Redis: the steps of stores/_docs.py, atomically, in one call.
-- KEYS: the documents touched (scope and key documents, JSON strings).
-- ARGV[1]: {"settle": [report...], "reserve": request or absent, "scope_ttl": s, "key_ttl": s}
-- Each report / request names its documents by index into KEYS ("s" scope, "k" key).
-- Returns the reservation's reply as JSON ("" when there is none).
local job = cjson.decode(ARGV[1])

-- JSON out with every number at full double precision (cjson.encode keeps only 14 digits,
-- which moves a timestamp by up to 0.1 ms). Documents here are objects all the way down.
local function enc(v)
  local t = type(v)
  if t == 'number' then return string.format('%.17g', v) end
  if t == 'string' then return cjson.encode(v) end
  if t == 'boolean' then return tostring(v) end
  local parts = {}
  for k, item in pairs(v) do parts[#parts + 1] = cjson.encode(tostring(k)) .. ':' .. enc(item) end
  return '{' .. table.concat(parts, ',') .. '}'
end
local docs = {}
local dirty = {}

local function load(i)
  if docs[i] == nil then
    local raw = redis.call('GET', KEYS[i])
    if raw then docs[i] = cjson.decode(raw) else docs[i] = false end
  end
  return docs[i]
end

local function scope_doc(i)
  local doc = load(i)
  if not doc then
    doc = {dims = {}, state = 'available', ['until'] = 0, reason = '', leases = {}}
    docs[i] = doc
  end
  return doc
end

-- the core's Dimension arithmetic (core/quota.py), on a stored bucket
local function available(d, now)
  local level = d.level
  if d.rate and d.rate ~= 0 and now > d.as_of then level = level + d.rate * (now - d.as_of) end
  if d.limit and level > d.limit then return d.limit end
  return level
end

local function seconds_until(d, units, now)
  if units <= 0 then return 0 end
  local short = units - available(d, now)
  if short <= 0 then return 0 end
  if d.limit and units > d.limit then return math.huge end
  if not d.rate or d.rate == 0 then return math.huge end
  return short / d.rate + 1e-6
end

local function observe(d, limit, remaining, reset_at, unsettled, now)
  if limit and limit > 0 then d.limit = limit; d.announced = true end
  if not remaining then return false end
  remaining = math.max(0, remaining)
  if not d.announced and remaining > (d.limit or 0) then d.limit = remaining end
  if d.limit then remaining = math.min(remaining, d.limit) end
  if d.limit then
    local deficit = d.limit - remaining
    if reset_at and deficit >= 1 and reset_at > now then
      local observed = deficit / (reset_at - now)
      local weight = math.min(1, deficit / math.max(1, 0.25 * d.limit))
      if d.rate then d.rate = d.rate + weight * (observed - d.rate) else d.rate = observed end
    elseif not d.rate then
      d.rate = d.limit / 60
    end
  end
  d.level = remaining - unsettled
  d.as_of = now
  return true
end

local function purge(scope, now)
  for id, lease in pairs(scope.leases) do
    if lease.expires < now then scope.leases[id] = nil end
  end
end

local function num(v) if v == cjson.null then return nil end return v end

local function settle(r)
  local scope = scope_doc(r.s)
  local now = r.at
  purge(scope, now)
  local lease = scope.leases[r.lease]
  scope.leases[r.lease] = nil
  local obs = r.obs or {}
  for _, o in ipairs(obs) do
    local name, limit, remaining, reset_at, observed_at = o[1], num(o[2]), num(o[3]), num(o[4]), o[5]
    local d = scope.dims[name]
    if not (d and observed_at < (d.seen or 0) - 1e-3) then
      local unsettled = 0
      for _, other in pairs(scope.leases) do unsettled = unsettled + (other.units[name] or 0) end
      local fresh = d or {level = 0, as_of = 0, announced = false}
      if observe(fresh, limit, remaining, reset_at, unsettled, now) then
        fresh.seen = observed_at
        scope.dims[name] = fresh
      elseif d then
        scope.dims[name] = fresh
      end
    end
  end
  if #obs == 0 and r.refund and lease then
    for name, units in pairs(lease.units) do
      local d = scope.dims[name]
      if d then d.level = available(d, now) + units; d.as_of = now end
    end
  end
  if r.cool then
    local state, until_, reason = r.cool[1], r.cool[2], r.cool[3]
    local keep = false
    if state == 'cooling' then
      if scope.state == 'exhausted' and scope['until'] > until_ then keep = true end
      if scope.state == 'cooling' and scope['until'] >= until_ then keep = true end
    end
    if not keep then scope.state = state; scope['until'] = until_; scope.reason = reason end
  end
  dirty[r.s] = true
  if r.flag then
    docs[r.k] = {state = r.flag[1], reason = r.flag[2], ['until'] = now + job.key_ttl}
    dirty[r.k] = true
  end
end

local function reply(scope, key, granted, retry_at)
  local out = {granted = granted, dims = scope.dims, state = scope.state,
               ['until'] = scope['until'], reason = scope.reason, retry_at = retry_at}
  if key then out.key = key end
  return enc(out)
end

local function reserve(q)
  local scope = scope_doc(q.s)
  local key = load(q.k)
  local now = q.at
  purge(scope, now)
  dirty[q.s] = true
  if key and (key.state == 'invalid' or key.state == 'disabled')
      and (key['until'] or math.huge) > now then
    return reply(scope, key, false, nil)
  end
  if scope.state ~= 'available' and now < scope['until'] then
    return reply(scope, key, false, scope['until'])
  end
  local wait = 0
  for name, units in pairs(q.units) do
    local d = scope.dims[name]
    if d then wait = math.max(wait, seconds_until(d, units, now)) end
  end
  if wait > 0 then
    local retry_at = nil
    if wait < math.huge then retry_at = now + wait end
    return reply(scope, key, false, retry_at)
  end
  for name, units in pairs(q.units) do
    local d = scope.dims[name]
    if d then d.level = available(d, now) - units; d.as_of = now end
  end
  scope.leases[q.lease] = {units = q.units, expires = q.expires}
  return reply(scope, key, true, nil)
end

for _, r in ipairs(job.settle) do settle(r) end
local out = ''
if job.reserve then out = reserve(job.reserve) end
for i, _ in pairs(dirty) do
  local doc = docs[i]
  if doc then
    local ttl = job.key_ttl
    if doc.leases then
      ttl = job.scope_ttl
      local left = (doc['until'] or 0) - job.now
      if left + 60 > ttl then ttl = math.floor(left + 60) end
    end
    redis.call('SET', KEYS[i], enc(doc), 'EX', ttl)
  end
end
return out
