-- Every customer living in Australia.
select customer_id, email, phone, x_handle, x_user_id
from customers
where country = 'AU'
