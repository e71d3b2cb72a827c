-- Argo CD health check for databuild.dev/Want, following kstatus conventions:
-- a status written for an older generation is not trusted; Ready=True is Healthy;
-- Failed and Expired are terminal failures, and Stalled=True (e.g. no JobDefinition
-- builds a wanted partition) needs someone to act: both Degraded. Anything else is
-- in progress.
local hs = {}
local generation = 0
if obj.metadata ~= nil and obj.metadata.generation ~= nil then
  generation = obj.metadata.generation
end
local status = obj.status
if status == nil or status.observedGeneration == nil or status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the DataBuild operator to observe generation " .. tostring(generation)
  return hs
end

local ready = nil
local stalled = nil
if status.conditions ~= nil then
  for _, condition in ipairs(status.conditions) do
    if condition.type == "Ready" then
      ready = condition
    elseif condition.type == "Stalled" and condition.status == "True" then
      stalled = condition
    end
  end
end
local message = status.state or "Pending"
local why = stalled or ready
if why ~= nil and why.message ~= nil and why.message ~= "" then
  message = message .. ": " .. why.message
end
if status.progress ~= nil then
  message = message .. " (" .. status.progress .. " partitions live)"
end
hs.message = message

if status.state == "Failed" or status.state == "Expired" or stalled ~= nil then
  hs.status = "Degraded"
elseif status.state == "Successful" and ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
else
  hs.status = "Progressing"
end
return hs
