-- Customers with at least one order over $1,000.
select c.customer_id, c.email, c.phone, c.x_handle, c.device_id
from customers c
where exists (
  select 1 from orders o where o.customer_id = c.customer_id and o.amount > 1000
)
